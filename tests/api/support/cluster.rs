//! The Redis Cluster started by scripts/test.sh, seen from a test.

use prizewheel::domain::CampaignId;
use prizewheel::store::redis::keys::CampaignKeys;

/// The node (seed URL) holding the campaign's slot: the only one that answers
/// a command on its keys instead of redirecting it with MOVED.
pub fn owner(seeds: &[String], id: &str) -> String {
    owner_of(
        seeds,
        &CampaignKeys::new(&CampaignId::parse(id).unwrap()).meta,
    )
}

/// The node (seed URL) holding `key`'s slot.
pub fn owner_of(seeds: &[String], key: &str) -> String {
    let owners: Vec<&String> = seeds
        .iter()
        .filter(|seed| {
            let mut c = redis::Client::open(seed.as_str())
                .unwrap()
                .get_connection()
                .unwrap();
            redis::cmd("EXISTS").arg(key).query::<i64>(&mut c).is_ok()
        })
        .collect();
    assert_eq!(owners.len(), 1, "exactly one primary owns {key}");
    owners[0].clone()
}
