//! Rolling a campaign out: what applying it would change against what is live
//! in Redis (`plan`), and applying it (`apply`: one atomic Redis script, the
//! version record in PostgreSQL, then the recovery check). Serves the CLI and
//! the admin API. The campaign itself (YAML, validation) is `crate::campaign`.

pub mod apply;
pub mod codes;
pub mod plan;
