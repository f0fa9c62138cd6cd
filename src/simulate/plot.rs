//! The stock burn-down of a simulated sale as an SVG chart (plotters, SVG
//! backend only: text is left to the viewer, no font files are needed).

use super::Report;
use plotters::prelude::*;
use std::path::Path;

/// Writes one curve per stock-bounded prize: percent of its stock remaining
/// against hours into the sale.
pub fn burn_down_svg(report: &Report, path: &Path) -> anyhow::Result<()> {
    let hours = (report.window_secs / 3600.0).max(1e-3);
    let root = SVGBackend::new(path, (960, 540)).into_drawing_area();
    root.fill(&WHITE).map_err(plot_error)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!(
                "{}: stock remaining ({:?} arrival, first run)",
                report.campaign_id, report.arrival
            ),
            ("sans-serif", 22),
        )
        .margin(16)
        .x_label_area_size(40)
        .y_label_area_size(56)
        .build_cartesian_2d(0f64..hours, 0f64..100f64)
        .map_err(plot_error)?;
    chart
        .configure_mesh()
        .x_desc("hours into the sale")
        .y_desc("% of stock remaining")
        .draw()
        .map_err(plot_error)?;
    for (k, b) in report.burn_down.iter().enumerate() {
        let color = Palette99::pick(k).to_rgba();
        let stock = b.stock.max(1) as f64;
        chart
            .draw_series(LineSeries::new(
                b.points
                    .iter()
                    .map(|(secs, left)| (secs / 3600.0, *left as f64 * 100.0 / stock)),
                color.stroke_width(2),
            ))
            .map_err(plot_error)?
            .label(format!("{} ({} units)", b.id, b.stock))
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(plot_error)?;
    root.present().map_err(plot_error)?;
    Ok(())
}

fn plot_error(e: impl std::fmt::Display) -> anyhow::Error {
    anyhow::anyhow!("drawing the chart: {e}")
}
