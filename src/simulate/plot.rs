//! The simulated sale as a chart a marketer reads at a glance (plotters, SVG
//! backend only: text is left to the viewer, no font files are needed).
//!
//! Per stock-bounded prize, the share of its stock awarded over the sale (a
//! solid line) and, for a paced prize, the share released (dashed, the same
//! colour) above it; with a budget, the share of it spent (black) and when it
//! runs out. Every line is the median over the runs. The x-axis is in dates and
//! times of the campaign's time zone, and ends a little after the last change
//! of any line when that comes early in the window (a burst is over in
//! minutes), which its caption says.

use super::{Report, duration_text, local};
use chrono::{Datelike, NaiveDate, NaiveDateTime, TimeZone};
use chrono_tz::Tz;
use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint};
use plotters::prelude::*;
use std::ops::Range;
use std::path::Path;

const WIDTH: u32 = 1280;
const HEIGHT: u32 = 720;
/// Width of the legend beside the chart.
const LEGEND: u32 = 330;

/// Line colours on white, in order of use: distinct hues, each with a
/// contrast of at least 4.5:1 against white (WCAG), none of them yellow.
pub const PALETTE: [RGBColor; 8] = [
    RGBColor(0x00, 0x5A, 0xB5), // blue
    RGBColor(0xC4, 0x3C, 0x00), // vermilion
    RGBColor(0x11, 0x77, 0x33), // green
    RGBColor(0x88, 0x22, 0x55), // wine
    RGBColor(0x33, 0x22, 0x88), // indigo
    RGBColor(0x00, 0x6D, 0x77), // teal
    RGBColor(0x8A, 0x4B, 0x08), // brown
    RGBColor(0xA0, 0x1A, 0x9A), // purple
];
/// Text, and the budget's line.
const INK: RGBColor = RGBColor(0x1A, 0x1A, 0x1A);
const MUTED: RGBColor = RGBColor(0x4D, 0x4D, 0x4D);
const GRID: RGBColor = RGBColor(0xD9, 0xD9, 0xD9);

/// Writes the chart of `report` into `path`, as SVG.
pub fn burn_down_svg(report: &Report, path: &Path) -> anyhow::Result<()> {
    let svg = burn_down_svg_text(report)?;
    std::fs::write(path, svg)
        .map_err(|e| anyhow::anyhow!("cannot write the chart to {}: {e}", path.display()))
}

/// The chart's title: the campaign's name and the arrival model.
pub fn title(report: &Report) -> String {
    format!(
        "{} — {} arrival",
        report.campaign_name,
        report.arrival.as_str()
    )
}

/// The chart of `report` as an SVG document.
pub fn burn_down_svg_text(report: &Report) -> anyhow::Result<String> {
    let mut svg = String::new();
    draw(report, &mut svg).map_err(|e| anyhow::anyhow!("drawing the chart: {e}"))?;
    Ok(svg)
}

type DrawResult = Result<(), Box<dyn std::error::Error>>;

fn draw(report: &Report, svg: &mut String) -> DrawResult {
    let root = SVGBackend::with_string(svg, (WIDTH, HEIGHT)).into_drawing_area();
    root.fill(&WHITE)?;
    let root = root.margin(14, 10, 18, 18);
    let (head, body) = root.split_vertically(66);
    head.draw(&Text::new(
        title(report),
        (0, 0),
        ("sans-serif", 26).into_font().color(&INK),
    ))?;
    head.draw(&Text::new(
        subtitle(report),
        (0, 36),
        ("sans-serif", 15).into_font().color(&MUTED),
    ))?;
    let (plot_area, side) = body.split_horizontally(WIDTH - 36 - LEGEND);

    let span = Span::of(report);
    let ticks = time_ticks(
        report.tz,
        report.starts_ms,
        report.starts_ms + span.end_ms as i64,
        7,
    );
    let key_points: Vec<f64> = ticks
        .iter()
        .map(|(t, _)| (t - report.starts_ms) as f64)
        .collect();
    let label = |x: &f64| {
        ticks
            .iter()
            .find(|(t, _)| ((t - report.starts_ms) as f64 - x).abs() < 0.5)
            .map_or(String::new(), |(_, l)| l.clone())
    };
    let mut chart = ChartBuilder::on(&plot_area)
        .margin_right(24)
        .margin_top(8)
        .x_label_area_size(58)
        .y_label_area_size(62)
        .build_cartesian_2d(
            Axis {
                range: 0.0..span.end_ms,
                ticks: key_points,
            },
            Axis {
                range: 0.0..104.0,
                ticks: vec![0.0, 25.0, 50.0, 75.0, 100.0],
            },
        )?;
    chart
        .configure_mesh()
        .bold_line_style(GRID)
        .light_line_style(TRANSPARENT)
        .axis_style(MUTED)
        .label_style(("sans-serif", 14).into_font().color(&INK))
        .axis_desc_style(("sans-serif", 15).into_font().color(&INK))
        .x_label_formatter(&label)
        .y_label_formatter(&|y| format!("{y:.0}%"))
        .x_desc(span.caption(report))
        .y_desc(if report.budget.is_some() {
            "share of each prize's stock, and of the budget"
        } else {
            "share of each prize's stock"
        })
        .draw()?;

    let end = span.end_ms;
    for (k, b) in report.burn_down.iter().enumerate() {
        let colour = PALETTE[k % PALETTE.len()];
        let stock = b.stock.max(1) as f64;
        let share = |units: u64| units as f64 * 100.0 / stock;
        if !b.released.is_empty() {
            let mut released = vec![(0.0, 0.0)];
            released.extend(
                b.released
                    .iter()
                    .map(|&(s, units)| (s * 1000.0, share(units))),
            );
            chart.draw_series(DashedLineSeries::new(
                steps(&released, end),
                9,
                6,
                colour.stroke_width(2),
            ))?;
        }
        let awarded: Vec<(f64, f64)> = b
            .points
            .iter()
            .map(|&(s, left)| (s * 1000.0, share(b.stock - left.min(b.stock))))
            .collect();
        chart.draw_series(LineSeries::new(
            steps(&awarded, end),
            colour.stroke_width(3),
        ))?;
    }
    if let Some(budget) = &report.budget {
        let mut spent = vec![(0.0, 0.0)];
        spent.extend(budget.spent.iter().map(|&(s, f)| (s * 1000.0, f * 100.0)));
        chart.draw_series(LineSeries::new(steps(&spent, end), INK.stroke_width(2)))?;
        if let Some(at) = budget.ran_out_at_secs.map(|s| s * 1000.0)
            && at <= end
        {
            chart.draw_series(DashedLineSeries::new(
                [(at, 0.0), (at, 104.0)],
                3,
                4,
                INK.stroke_width(1),
            ))?;
        }
    }
    legend(report, &side)?;
    root.present()?;
    Ok(())
}

/// The line under the title: who spins, how, and what the lines are.
fn subtitle(report: &Report) -> String {
    let each = report.attempts_per_run / report.users.max(1);
    let runs = match report.runs {
        1 => "one run".to_owned(),
        n => format!("medians of {n} runs"),
    };
    format!(
        "{} shoppers × {each} spin attempts · {} · {runs}, seed {}",
        grouped(report.users),
        report.arrival.description(),
        report.seed
    )
}

/// The legend, beside the chart: a line sample and two lines of text per entry.
fn legend<DB: DrawingBackend>(
    report: &Report,
    area: &DrawingArea<DB, plotters::coord::Shift>,
) -> DrawResult
where
    DB::ErrorType: 'static,
{
    let name = ("sans-serif", 15).into_font().color(&INK);
    let note = ("sans-serif", 13).into_font().color(&MUTED);
    let mut y = 16;
    let mut entry =
        |sample: &dyn Fn(i32) -> DrawResult, first: String, second: Option<String>| -> DrawResult {
            sample(y + 8)?;
            area.draw(&Text::new(first, (40, y), name.clone()))?;
            y += 19;
            if let Some(s) = second {
                area.draw(&Text::new(s, (40, y), note.clone()))?;
                y += 17;
            }
            y += 12;
            Ok(())
        };
    let solid = |colour: RGBColor, width: u32| {
        move |at: i32| -> DrawResult {
            area.draw(&PathElement::new(
                vec![(0, at), (30, at)],
                colour.stroke_width(width),
            ))?;
            Ok(())
        }
    };
    let short = |at: i64| report.local(at).format("%-d %b %H:%M:%S").to_string();
    for (k, b) in report.burn_down.iter().enumerate() {
        let colour = PALETTE[k % PALETTE.len()];
        let p = report.prizes.iter().find(|p| p.id == b.id);
        let paced = !b.released.is_empty();
        let release = p.and_then(|p| p.release.clone()).unwrap_or_default();
        let first = if paced {
            format!("{}: {} units, {release}", b.id, grouped(b.stock))
        } else {
            format!("{}: {} units", b.id, grouped(b.stock))
        };
        let second = p.map(|p| match (p.ran_out_share >= 0.5, p.ran_out_at_secs) {
            (true, Some(s)) => format!("all awarded by {}", short((s * 1000.0) as i64)),
            _ => format!(
                "{} awarded ({:.0}%) by the end",
                grouped(p.awarded_median),
                p.awarded_median as f64 * 100.0 / b.stock.max(1) as f64
            ),
        });
        entry(&solid(colour, 3), first, second)?;
    }
    if let Some(budget) = &report.budget {
        let second = match (budget.ran_out_share >= 0.5, budget.ran_out_at_secs) {
            (true, Some(s)) => format!("runs out {} (dotted line)", short((s * 1000.0) as i64)),
            _ => format!(
                "{} spent by the end: never runs out",
                grouped_amount(&budget.awarded_median.to_string())
            ),
        };
        entry(
            &solid(INK, 2),
            format!(
                "budget: {} {}",
                budget.currency,
                grouped_amount(&budget.amount.to_string())
            ),
            Some(second),
        )?;
    }
    if report.burn_down.iter().any(|b| !b.released.is_empty()) {
        let dashes = |at: i32| -> DrawResult {
            for x in [0, 12, 24] {
                area.draw(&PathElement::new(
                    vec![(x, at), (x + 7, at)],
                    MUTED.stroke_width(2),
                ))?;
            }
            Ok(())
        };
        entry(
            &dashes,
            "dashed: units released so far".to_owned(),
            Some("(paced prizes; awarded stays below)".to_owned()),
        )?;
    }
    if report.burn_down.is_empty() {
        entry(&|_| Ok(()), "no prize has a bounded stock".to_owned(), None)?;
    }
    Ok(())
}

/// When a line through `points` (seconds into the sale, value; rising) first
/// reaches [`Span::SETTLED`] of its last value, in seconds (0 for no line).
fn settled(points: impl Iterator<Item = (f64, f64)>) -> f64 {
    let points: Vec<(f64, f64)> = points.collect();
    let Some(&(_, last)) = points.last() else {
        return 0.0;
    };
    points
        .iter()
        .find(|&&(_, v)| v >= last * Span::SETTLED)
        .map_or(0.0, |&(t, _)| t)
}

/// A linear axis with the ticks given.
struct Axis {
    range: Range<f64>,
    ticks: Vec<f64>,
}

impl Ranged for Axis {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        let width = (self.range.end - self.range.start).max(f64::MIN_POSITIVE);
        let share = (value - self.range.start) / width;
        limit.0 + (share * f64::from(limit.1 - limit.0)).round() as i32
    }

    fn key_points<H: KeyPointHint>(&self, hint: H) -> Vec<f64> {
        if hint.weight().allow_light_points() {
            Vec::new()
        } else {
            self.ticks.clone()
        }
    }

    fn range(&self) -> Range<f64> {
        self.range.clone()
    }
}

/// A step line through `points` (ms into the sale, y): each value holds until
/// the next point, and the last until `end`, where the line is cut.
fn steps(points: &[(f64, f64)], end: f64) -> Vec<(f64, f64)> {
    let mut out = Vec::with_capacity(points.len() * 2 + 1);
    for &(x, y) in points {
        if x > end {
            break;
        }
        if let Some(&(_, prev)) = out.last() {
            out.push((x, prev));
        }
        out.push((x, y));
    }
    if let Some(&(_, last)) = out.last() {
        out.push((end, last));
    }
    out
}

/// The part of the sale the chart shows.
struct Span {
    /// Ms into the sale where the x-axis ends.
    end_ms: f64,
    /// Whether that is the whole window.
    whole: bool,
}

impl Span {
    /// The share of its change by which a line counts as settled.
    const SETTLED: f64 = 0.95;

    /// The whole window, unless every line has settled (made 95 % of its
    /// change over the sale, and reached its end if it runs out) before 80 %
    /// of it: then up to a little after that. A burst's long tail, where a line
    /// creeps up its last percents over months, would otherwise squeeze the
    /// sale's first hours against the y-axis.
    fn of(report: &Report) -> Span {
        let window = (report.window_secs * 1000.0).max(1.0);
        let mut last: f64 = 0.0;
        for b in &report.burn_down {
            let awarded = b
                .points
                .iter()
                .map(|&(t, left)| (t, b.stock.saturating_sub(left) as f64));
            last = last.max(settled(awarded));
            last = last.max(settled(b.released.iter().map(|&(t, n)| (t, n as f64))));
            if let Some(p) = report.prizes.iter().find(|p| p.id == b.id)
                && p.ran_out_share >= 0.5
            {
                last = last.max(p.ran_out_at_secs.unwrap_or(0.0));
            }
        }
        if let Some(budget) = &report.budget {
            last = last.max(settled(budget.spent.iter().copied()));
            if budget.ran_out_share >= 0.5 {
                last = last.max(budget.ran_out_at_secs.unwrap_or(0.0));
            }
        }
        let end = last * 1000.0 * 1.08 + 1.0;
        if last <= 0.0 || end >= 0.8 * window {
            Span {
                end_ms: window,
                whole: true,
            }
        } else {
            Span {
                end_ms: end,
                whole: false,
            }
        }
    }

    /// The x-axis caption: the time zone, and which part of the window it shows.
    fn caption(&self, report: &Report) -> String {
        let start = report.local(0);
        let zone = format!("{} time (UTC{})", report.timezone, start.format("%:z"));
        if self.whole {
            let end = report.local((report.window_secs * 1000.0) as i64);
            format!(
                "{zone} · the whole window, {} to {}",
                start.format("%-d %b %Y %H:%M"),
                end.format("%-d %b %Y %H:%M")
            )
        } else {
            format!(
                "{zone} · the first {} of the window ({}), by when every line has made {:.0}% of its change",
                duration_text(self.end_ms / 1000.0),
                duration_text(report.window_secs),
                Self::SETTLED * 100.0
            )
        }
    }
}

const SECOND: i64 = 1000;
const MINUTE: i64 = 60 * SECOND;
const HOUR: i64 = 60 * MINUTE;

/// A spacing of ticks on the time axis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// Milliseconds of local time (dividing a day from 1 s up: ticks fall on
    /// round local times).
    Ms(i64),
    /// Local midnights, every so many days (7: Mondays).
    Days(i64),
    /// First days of months, every so many months.
    Months(u32),
}

const STEPS: [Step; 35] = [
    Step::Ms(1),
    Step::Ms(2),
    Step::Ms(5),
    Step::Ms(10),
    Step::Ms(20),
    Step::Ms(50),
    Step::Ms(100),
    Step::Ms(200),
    Step::Ms(500),
    Step::Ms(SECOND),
    Step::Ms(2 * SECOND),
    Step::Ms(5 * SECOND),
    Step::Ms(10 * SECOND),
    Step::Ms(15 * SECOND),
    Step::Ms(30 * SECOND),
    Step::Ms(MINUTE),
    Step::Ms(2 * MINUTE),
    Step::Ms(5 * MINUTE),
    Step::Ms(10 * MINUTE),
    Step::Ms(15 * MINUTE),
    Step::Ms(30 * MINUTE),
    Step::Ms(HOUR),
    Step::Ms(2 * HOUR),
    Step::Ms(3 * HOUR),
    Step::Ms(6 * HOUR),
    Step::Ms(12 * HOUR),
    Step::Days(1),
    Step::Days(2),
    Step::Days(7),
    Step::Days(14),
    Step::Months(1),
    Step::Months(2),
    Step::Months(3),
    Step::Months(6),
    Step::Months(12),
];

impl Step {
    fn approx_ms(self) -> f64 {
        match self {
            Step::Ms(ms) => ms as f64,
            Step::Days(d) => d as f64 * 24.0 * HOUR as f64,
            Step::Months(m) => f64::from(m) * 30.44 * 24.0 * HOUR as f64,
        }
    }

    fn format(self) -> &'static str {
        match self {
            Step::Ms(ms) if ms < SECOND => "%H:%M:%S%.3f",
            Step::Ms(ms) if ms < MINUTE => "%H:%M:%S",
            Step::Ms(_) => "%H:%M",
            Step::Days(_) => "%-d %b",
            Step::Months(_) => "%b %Y",
        }
    }
}

/// Ticks for the time axis from `from` to `to` (Unix ms), at most `max` of
/// them, on round local times of `tz`: (Unix ms, label). A tick within a day
/// is labelled with the time, and the date too on the first tick and where
/// the date changes; a tick of days with the date, of months with the month.
pub fn time_ticks(tz: Tz, from: i64, to: i64, max: usize) -> Vec<(i64, String)> {
    let span = (to - from).max(1) as f64;
    let step = STEPS
        .iter()
        .copied()
        .find(|s| span / s.approx_ms() <= max.max(2) as f64 - 1.0)
        .unwrap_or(Step::Months(12));
    let instants = match step {
        Step::Ms(ms) => {
            let naive = |t: i64| local(tz, t).naive_local().and_utc().timestamp_millis();
            let (first, last) = (naive(from).div_euclid(ms) * ms, naive(to));
            (0..)
                .map(|k| first + k * ms)
                .take_while(|&n| n <= last)
                .take(1000)
                .filter_map(|n| {
                    let naive = chrono::DateTime::from_timestamp_millis(n)?.naive_utc();
                    first_existing(tz, naive)
                })
                .filter(|&t| t >= from && t <= to)
                .collect::<Vec<_>>()
        }
        Step::Days(d) => {
            let shift = if d == 7 { 3 } else { 0 };
            dates(tz, from, to, |date| {
                let days = date.signed_duration_since(NaiveDate::default()).num_days();
                (days + shift).rem_euclid(d) == 0
            })
        }
        Step::Months(m) => dates(tz, from, to, |date| {
            date.day() == 1
                && (date.year() as i64 * 12 + i64::from(date.month0())) % i64::from(m) == 0
        }),
    };
    let mut out = Vec::with_capacity(instants.len());
    let mut previous: Option<NaiveDate> = None;
    for t in instants {
        let at = local(tz, t);
        let mut label = at.format(step.format()).to_string();
        if matches!(step, Step::Ms(_)) && previous != Some(at.date_naive()) {
            label = format!("{} {label}", at.format("%-d %b"));
        }
        previous = Some(at.date_naive());
        out.push((t, label));
    }
    if out.is_empty() {
        out.push((
            from,
            local(tz, from).format("%-d %b %H:%M:%S%.3f").to_string(),
        ));
    }
    out
}

/// The local midnights from `from` to `to` (Unix ms) of the dates `keep` takes.
fn dates(tz: Tz, from: i64, to: i64, keep: impl Fn(NaiveDate) -> bool) -> Vec<i64> {
    let mut date = local(tz, from).date_naive();
    let mut out = Vec::new();
    for _ in 0..1000 {
        let Some(t) = first_existing(tz, date.and_time(chrono::NaiveTime::MIN)) else {
            break;
        };
        if t > to {
            break;
        }
        if t >= from && keep(date) {
            out.push(t);
        }
        match date.succ_opt() {
            Some(d) => date = d,
            None => break,
        }
    }
    out
}

/// The instant of local time `naive` in `tz` (Unix ms); where a clock change
/// skips it, the first local time after it that exists.
fn first_existing(tz: Tz, naive: NaiveDateTime) -> Option<i64> {
    (0..8).find_map(|k| {
        tz.from_local_datetime(&(naive + chrono::Duration::minutes(15 * k)))
            .earliest()
            .map(|t| t.timestamp_millis())
    })
}

/// `1234567` → `1,234,567`.
fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `8000000.00` → `8,000,000.00`.
fn grouped_amount(amount: &str) -> String {
    let (whole, fraction) = amount.split_once('.').unwrap_or((amount, ""));
    match whole.parse::<u64>() {
        Ok(n) if fraction.is_empty() => grouped(n),
        Ok(n) => format!("{}.{fraction}", grouped(n)),
        Err(_) => amount.to_owned(),
    }
}

/// The WCAG contrast ratio of two colours (1 to 21).
pub fn contrast(a: RGBColor, b: RGBColor) -> f64 {
    let luminance = |c: RGBColor| {
        let channel = |v: u8| {
            let v = f64::from(v) / 255.0;
            if v <= 0.040_45 {
                v / 12.92
            } else {
                ((v + 0.055) / 1.055).powf(2.4)
            }
        };
        0.2126 * channel(c.0) + 0.7152 * channel(c.1) + 0.0722 * channel(c.2)
    };
    let (la, lb) = (luminance(a), luminance(b));
    (la.max(lb) + 0.05) / (la.min(lb) + 0.05)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simulate::tests::{NONE, kolkata};
    use crate::simulate::{Arrival, Options, simulate};
    use chrono::Utc;

    fn options(users: u64, arrival: Arrival) -> Options {
        Options {
            users,
            spins_per_user: 5,
            arrival,
            runs: 3,
            seed: 7,
            samples: 200,
            grants_per_user: 1.0,
            spins_per_grant: 1,
            codes: Default::default(),
        }
    }

    /// The text of every `<text>` element of `svg`, unescaped.
    fn texts(svg: &str) -> Vec<String> {
        svg.split("<text")
            .skip(1)
            .filter_map(|t| {
                let body = &t[t.find('>')? + 1..t.find("</text>")?];
                Some(
                    body.trim()
                        .replace("&apos;", "'")
                        .replace("&quot;", "\"")
                        .replace("&lt;", "<")
                        .replace("&gt;", ">")
                        .replace("&amp;", "&"),
                )
            })
            .collect()
    }

    /// The stroke colours of `svg`'s lines of `width`, with how many lines.
    fn strokes(svg: &str, width: u32) -> std::collections::BTreeMap<String, usize> {
        let mut out = std::collections::BTreeMap::new();
        for line in svg
            .split('<')
            .filter(|e| e.starts_with("polyline") || e.starts_with("line"))
        {
            if !line.contains(&format!("stroke-width=\"{width}\"")) {
                continue;
            }
            if let Some(at) = line.find("stroke=\"#") {
                *out.entry(line[at + 8..at + 15].to_owned()).or_default() += 1;
            }
        }
        out
    }

    fn hex(c: RGBColor) -> String {
        format!("#{:02X}{:02X}{:02X}", c.0, c.1, c.2)
    }

    #[test]
    fn the_chart_names_the_campaign_and_the_arrival_and_reads_in_local_time() {
        let prizes = format!(
            "  - {{id: gold, name: G, weight: 3, stock: 20, release: even, value: {{amount: \"500.00\", currency: INR}}}}\n  - {{id: silver, name: S, weight: 20, stock: 1500, value: {{amount: \"10.50\", currency: INR}}}}\n{NONE}"
        );
        let c = kolkata("budget: {amount: \"5000.00\", currency: INR}\n", &prizes);
        let report = simulate(&c, &options(2000, Arrival::Uniform));
        let svg = burn_down_svg_text(&report).unwrap();
        assert!(svg.starts_with("<svg"));
        let t = texts(&svg);
        let has = |s: &str| t.iter().any(|x| x == s);
        assert!(has("Sim Sale — uniform arrival"), "{t:?}");
        assert!(
            has(
                "2,000 shoppers × 5 spin attempts · spin attempts spread evenly over the window · medians of 3 runs, seed 7"
            ),
            "{t:?}"
        );
        // A four-day window from local midnight: a tick at each midnight in
        // Asia/Kolkata, labelled with the local date.
        for day in ["1 Nov", "2 Nov", "3 Nov", "4 Nov", "5 Nov"] {
            assert!(has(day), "{day}: {t:?}");
        }
        assert!(
            has(
                "Asia/Kolkata time (UTC+05:30) · the whole window, 1 Nov 2026 00:00 to 5 Nov 2026 00:00"
            ),
            "{t:?}"
        );
        assert!(
            has("share of each prize's stock, and of the budget"),
            "{t:?}"
        );
        assert!(has("gold: 20 units, even"), "{t:?}");
        assert!(has("silver: 1,500 units"), "{t:?}");
        assert!(has("budget: INR 5,000.00"), "{t:?}");
        assert!(has("dashed: units released so far"), "{t:?}");
        let out = report.budget.as_ref().unwrap().ran_out_at_secs.unwrap();
        let when = report
            .local((out * 1000.0) as i64)
            .format("%-d %b %H:%M:%S");
        assert!(has(&format!("runs out {when} (dotted line)")), "{t:?}");
        let lower = svg.to_lowercase();
        for gone in ["first run", "hours into"] {
            assert!(!lower.contains(gone), "{gone}");
        }
        // Awarded lines (3 px) and released ones (dashes of 2 px) in the
        // palette's colours, the budget's in ink: no other colour draws a line.
        let (blue, vermilion) = (hex(PALETTE[0]), hex(PALETTE[1]));
        let thick = strokes(&svg, 3);
        assert!(
            thick.contains_key(&blue) && thick.contains_key(&vermilion),
            "{thick:?}"
        );
        let thin = strokes(&svg, 2);
        assert!(thin[&blue] > 10, "gold's release is dashed: {thin:?}");
        assert!(
            !thin.contains_key(&vermilion),
            "silver is not paced: {thin:?}"
        );
        assert!(thin.contains_key(&hex(INK)), "{thin:?}");
        let allowed: Vec<String> = PALETTE
            .iter()
            .chain(&[INK, MUTED, GRID])
            .map(|&c| hex(c))
            .collect();
        for width in 1..=3 {
            for colour in strokes(&svg, width).keys() {
                assert!(allowed.contains(colour), "{colour}");
            }
        }
    }

    /// Prizes that run out in a burst's first hours: the x-axis ends a little
    /// after, in local clock times, and its caption says so.
    #[test]
    fn a_burst_is_drawn_up_to_where_its_lines_settle() {
        let prizes = format!(
            "  - {{id: gold, name: G, weight: 1, stock: 20, value: {{amount: \"500.00\", currency: INR}}}}\n  - {{id: silver, name: S, weight: 20, stock: 300, value: {{amount: \"10.50\", currency: INR}}}}\n{NONE}"
        );
        let report = simulate(&kolkata("", &prizes), &options(20_000, Arrival::Burst));
        let last_out = report
            .prizes
            .iter()
            .filter_map(|p| p.ran_out_at_secs)
            .fold(0.0, f64::max);
        assert_eq!(report.prizes[1].ran_out_share, 1.0);
        let span = Span::of(&report);
        assert!(!span.whole);
        assert!(
            span.end_ms >= last_out * 1000.0 && span.end_ms < 0.1 * report.window_secs * 1000.0
        );
        let svg = burn_down_svg_text(&report).unwrap();
        let t = texts(&svg);
        let caption = t
            .iter()
            .find(|s| s.starts_with("Asia/Kolkata time"))
            .unwrap();
        assert!(
            caption.contains(" · the first ")
                && caption.ends_with(
                    "of the window (4.0 days), by when every line has made 95% of its change"
                ),
            "{caption}"
        );
        assert!(t.iter().any(|s| s == "Sim Sale — burst arrival"));
        // 20,000 shoppers take it all in seconds: ticks of clock times to the
        // second, the first with its date.
        assert!(t.iter().any(|s| s == "1 Nov 00:00:00"), "{t:?}");
        assert!(t.iter().any(|s| s == "00:00:01"), "{t:?}");
    }

    fn utc(s: &str) -> i64 {
        chrono::DateTime::parse_from_rfc3339(s)
            .unwrap()
            .with_timezone(&Utc)
            .timestamp_millis()
    }

    #[test]
    fn ticks_fall_on_round_local_times() {
        let kolkata: Tz = "Asia/Kolkata".parse().unwrap();
        let midnight = utc("2026-11-01T00:00:00+05:30");
        let labels = |ticks: Vec<(i64, String)>| ticks.into_iter().map(|t| t.1).collect::<Vec<_>>();
        assert_eq!(
            labels(time_ticks(kolkata, midnight, midnight + 300, 7)),
            [
                "1 Nov 00:00:00.000",
                "00:00:00.050",
                "00:00:00.100",
                "00:00:00.150",
                "00:00:00.200",
                "00:00:00.250",
                "00:00:00.300"
            ]
        );
        assert_eq!(
            labels(time_ticks(
                kolkata,
                midnight + 1,
                midnight + 2 * 3_600_000,
                7
            )),
            ["1 Nov 00:30", "01:00", "01:30", "02:00"]
        );
        // Nepal is 5:45 ahead of UTC: ticks on its round hours, not UTC's.
        let kathmandu: Tz = "Asia/Kathmandu".parse().unwrap();
        let from = utc("2026-11-01T20:00:00+05:45");
        let ticks = time_ticks(kathmandu, from, from + 12 * 3_600_000, 7);
        assert_eq!(ticks[0].0, utc("2026-11-01T20:00:00+05:45"));
        assert_eq!(ticks[2].0, utc("2026-11-02T00:00:00+05:45"));
        assert_eq!(
            labels(ticks),
            [
                "1 Nov 20:00",
                "22:00",
                "2 Nov 00:00",
                "02:00",
                "04:00",
                "06:00",
                "08:00"
            ]
        );
        // Midnights across the end of summer time in Berlin (25 Oct 2026).
        let berlin: Tz = "Europe/Berlin".parse().unwrap();
        let from = utc("2026-10-23T12:00:00+02:00");
        let ticks = time_ticks(berlin, from, from + 4 * 86_400_000, 7);
        assert_eq!(
            ticks.iter().map(|t| t.0).collect::<Vec<_>>(),
            [
                utc("2026-10-24T00:00:00+02:00"),
                utc("2026-10-25T00:00:00+02:00"),
                utc("2026-10-26T00:00:00+01:00"),
                utc("2026-10-27T00:00:00+01:00"),
            ]
        );
        assert_eq!(labels(ticks), ["24 Oct", "25 Oct", "26 Oct", "27 Oct"]);
        // A year: months.
        let from = utc("2026-11-01T00:00:00+05:30");
        let ticks = time_ticks(kolkata, from, from + 364 * 86_400_000, 7);
        assert_eq!(
            labels(ticks),
            [
                "Nov 2026", "Jan 2027", "Mar 2027", "May 2027", "Jul 2027", "Sep 2027"
            ]
        );
    }

    /// No yellow on white: every line colour has a contrast of 4.5:1 or more
    /// against the background (WCAG's bar for text), and they all differ.
    #[test]
    fn the_palette_reads_on_white() {
        for c in PALETTE {
            assert!(
                contrast(c, WHITE) >= 4.5,
                "{} {:.2}",
                hex(c),
                contrast(c, WHITE)
            );
        }
        assert!(contrast(INK, WHITE) >= 7.0 && contrast(MUTED, WHITE) >= 7.0);
        assert!(
            contrast(RGBColor(0xFF, 0xD7, 0x00), WHITE) < 2.0,
            "yellow fails it"
        );
        for (i, a) in PALETTE.iter().enumerate() {
            for b in &PALETTE[i + 1..] {
                assert_ne!(hex(*a), hex(*b));
            }
        }
        assert_eq!(grouped(1_234_567), "1,234,567");
        assert_eq!(grouped_amount("8000000.00"), "8,000,000.00");
    }
}
