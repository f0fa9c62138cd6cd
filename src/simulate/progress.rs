//! The progress of a long simulation, on stderr: nothing while it is short,
//! then where it is, at most every few seconds (on a terminal, one line
//! rewritten in place), and a last line when it is done.

use super::{Tick, duration_text};
use std::io::{IsTerminal, Stderr, Write};
use std::time::{Duration, Instant};

pub struct Progress<W: Write> {
    out: W,
    started: Instant,
    /// Nothing is shown before this much time has passed.
    delay: Duration,
    /// The shortest time between two updates.
    every: Duration,
    /// Rewrite one line in place (a terminal) rather than print a line per update.
    in_place: bool,
    /// When the last update was shown (time since `started`).
    shown: Option<Duration>,
    last: Option<Tick>,
}

impl Progress<Stderr> {
    /// On stderr: after 2 s, then on a terminal 4 updates a second, else a
    /// line every 5 s.
    pub fn stderr() -> Self {
        let err = std::io::stderr();
        let tty = err.is_terminal();
        let every = if tty {
            Duration::from_millis(250)
        } else {
            Duration::from_secs(5)
        };
        Progress::new(err, Duration::from_secs(2), every, tty)
    }
}

impl<W: Write> Progress<W> {
    pub fn new(out: W, delay: Duration, every: Duration, in_place: bool) -> Self {
        Progress {
            out,
            started: Instant::now(),
            delay,
            every,
            in_place,
            shown: None,
            last: None,
        }
    }

    /// Shows `t` if it is time to.
    pub fn tick(&mut self, t: Tick) {
        let elapsed = self.started.elapsed();
        self.tick_at(t, elapsed);
    }

    /// [`Self::tick`], `elapsed` after the start.
    pub fn tick_at(&mut self, t: Tick, elapsed: Duration) {
        self.last = Some(t);
        let due = match self.shown {
            None => elapsed >= self.delay,
            Some(at) => elapsed >= at + self.every,
        };
        if due {
            let text = line(t, elapsed);
            self.show(&text);
            self.shown = Some(elapsed);
        }
    }

    /// Ends the display with how long the simulation took, if anything was shown.
    pub fn finish(&mut self) {
        let elapsed = self.started.elapsed();
        self.finish_at(elapsed);
    }

    /// [`Self::finish`], `elapsed` after the start.
    pub fn finish_at(&mut self, elapsed: Duration) {
        if self.shown.is_none() {
            return;
        }
        let runs = self.last.map_or(0, |t| t.runs);
        let text = format!(
            "simulate: {runs} run(s) done in {}",
            duration_text(elapsed.as_secs_f64())
        );
        self.show(&text);
        if self.in_place {
            let _ = writeln!(self.out);
        }
        let _ = self.out.flush();
        self.shown = None;
    }

    fn show(&mut self, text: &str) {
        // Progress is best effort: a closed stderr does not stop the simulation.
        let _ = if self.in_place {
            write!(self.out, "\r{text}\x1b[K")
        } else {
            writeln!(self.out, "{text}")
        };
        let _ = self.out.flush();
    }
}

/// `simulate: run 3 of 20, 45% of its 10000000 attempts; 12 s elapsed, about 30 s left`.
fn line(t: Tick, elapsed: Duration) -> String {
    let runs = u64::from(t.runs.max(1));
    let attempts = t.attempts.max(1);
    let done = u64::from(t.run.saturating_sub(1)) * attempts + t.done.min(attempts);
    let share = done as f64 / (runs * attempts) as f64;
    let secs = elapsed.as_secs_f64();
    let left = if share > 0.0 {
        format!(
            ", about {} left",
            duration_text(secs * (1.0 - share) / share)
        )
    } else {
        String::new()
    };
    format!(
        "simulate: run {} of {}, {:.0}% of its {} attempts; {} elapsed{left}",
        t.run,
        t.runs,
        t.done.min(attempts) as f64 * 100.0 / attempts as f64,
        attempts,
        duration_text(secs)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tick(run: u32, done: u64) -> Tick {
        Tick {
            run,
            runs: 4,
            done,
            attempts: 1000,
        }
    }

    fn text(p: Progress<Vec<u8>>) -> String {
        String::from_utf8(p.out).unwrap()
    }

    #[test]
    fn a_short_simulation_shows_nothing() {
        let mut p = Progress::new(
            Vec::new(),
            Duration::from_secs(2),
            Duration::from_secs(5),
            false,
        );
        for k in 0..100 {
            p.tick_at(
                tick(1 + k / 25, u64::from(k % 25) * 40),
                Duration::from_millis(19 * u64::from(k)),
            );
        }
        p.finish_at(Duration::from_millis(1900));
        assert_eq!(text(p), "");
    }

    #[test]
    fn a_long_one_shows_where_it_is_at_most_every_few_seconds() {
        let mut p = Progress::new(
            Vec::new(),
            Duration::from_secs(2),
            Duration::from_secs(5),
            false,
        );
        // A tick every 100 ms for 12 s: shown at 2 s, 7 s and 12 s.
        for k in 0..=120u64 {
            let (run, done) = (1 + (k / 31) as u32, (k % 31) * 32);
            p.tick_at(tick(run, done), Duration::from_millis(100 * k));
        }
        p.finish_at(Duration::from_millis(12_050));
        let out = text(p);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 4, "{out}");
        assert_eq!(
            lines[0],
            "simulate: run 1 of 4, 64% of its 1000 attempts; 2.00 s elapsed, about 10 s left"
        );
        assert!(lines[1].starts_with("simulate: run 3 of 4, "), "{out}");
        assert!(lines[2].starts_with("simulate: run 4 of 4, "), "{out}");
        assert_eq!(lines[3], "simulate: 4 run(s) done in 12 s");
    }

    #[test]
    fn on_a_terminal_it_rewrites_one_line() {
        let mut p = Progress::new(Vec::new(), Duration::ZERO, Duration::from_millis(250), true);
        p.tick_at(tick(1, 500), Duration::from_millis(300));
        p.tick_at(tick(2, 0), Duration::from_millis(400));
        p.tick_at(tick(2, 500), Duration::from_millis(600));
        p.finish_at(Duration::from_millis(700));
        let out = text(p);
        assert_eq!(out.matches('\r').count(), 3, "{out:?}");
        assert_eq!(out.matches('\n').count(), 1, "{out:?}");
        assert!(
            out.ends_with("simulate: 4 run(s) done in 0.70 s\u{1b}[K\n"),
            "{out:?}"
        );
    }
}
