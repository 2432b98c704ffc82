//! The sweep's SVG charts (plotters, SVG backend only: text is written as SVG `<text>`, so no
//! font library or system font is needed): throughput, p99 latency and memory per connection
//! against the number of connections, one line per model. Only levels a model served cleanly
//! are plotted; a model that failed says from which level in its legend entry.

use super::results::{Status, SweepResults, SweepRow};
use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
use plotters::prelude::*;
use std::path::{Path, PathBuf};

/// One chart: what to plot from each row, and how to label it.
struct ChartSpec {
    file: &'static str,
    title: &'static str,
    y_label: &'static str,
    /// Log scale on the y axis (latencies span orders of magnitude).
    log_y: bool,
    value: fn(&SweepRow) -> Option<f64>,
}

const CHARTS: [ChartSpec; 3] = [
    ChartSpec {
        file: "qps.svg",
        title: "Throughput: acknowledged messages per second",
        y_label: "messages / s",
        log_y: false,
        value: |r| Some(r.qps),
    },
    ChartSpec {
        file: "p99.svg",
        title: "Round-trip latency p99 (coordinated-omission corrected)",
        y_label: "p99 latency, ms (log scale)",
        log_y: true,
        value: |r| Some(r.p99_us.max(1) as f64 / 1000.0),
    },
    ChartSpec {
        file: "memory.svg",
        title: "Server memory per connection",
        y_label: "KiB per connection",
        log_y: false,
        value: |r| r.mem_per_conn_bytes.map(|b| b / 1024.0),
    },
];

/// Writes every chart into `dir`; returns the files written.
pub fn write_charts(results: &SweepResults, dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    for spec in &CHARTS {
        let path = dir.join(spec.file);
        draw(results, spec, &path)
            .map_err(|e| anyhow::anyhow!("cannot draw {}: {e}", path.display()))?;
        written.push(path);
    }
    Ok(written)
}

/// A model's plotted points and its legend entry.
struct Line {
    label: String,
    points: Vec<(f64, f64)>,
}

fn lines(results: &SweepResults, spec: &ChartSpec) -> Vec<Line> {
    let mut models: Vec<&str> = Vec::new();
    for row in &results.rows {
        if !models.contains(&row.model.as_str()) {
            models.push(&row.model);
        }
    }
    models
        .into_iter()
        .map(|model| {
            let rows: Vec<&SweepRow> = results.rows.iter().filter(|r| r.model == model).collect();
            let points = rows
                .iter()
                .filter(|r| r.status == Status::Ok)
                .filter_map(|r| Some((r.conns as f64, (spec.value)(r)?)))
                .filter(|(_, y)| y.is_finite() && (!spec.log_y || *y > 0.0))
                .collect();
            // Levels not plotted, and why: failed, or the generator fell behind (its figures
            // bound the generator, not the server).
            let label = match rows.iter().find(|r| r.status != Status::Ok) {
                Some(r) if r.status == Status::Behind => {
                    format!("{model} (generator behind from {})", r.conns)
                }
                Some(first_failure) => format!("{model} (failed from {})", first_failure.conns),
                None => model.to_string(),
            };
            Line { label, points }
        })
        .collect()
}

fn draw(
    results: &SweepResults,
    spec: &ChartSpec,
    path: &Path,
) -> Result<(), Box<dyn std::error::Error>> {
    let lines = lines(results, spec);
    let xs = results.settings.levels.iter().map(|&c| c as f64);
    let (x_min, x_max) = padded(
        xs.fold((f64::MAX, f64::MIN), |(a, b), x| (a.min(x), b.max(x))),
        1.25,
    );
    let ys = lines.iter().flat_map(|l| l.points.iter().map(|p| p.1));
    let (y_lo, y_hi) = ys.fold((f64::MAX, f64::MIN), |(a, b), y| (a.min(y), b.max(y)));
    let x_range = (x_min..x_max).log_scale();
    if spec.log_y {
        // Whole decades: plotters labels a log axis from the first power of ten in range.
        let (lo, hi) = padded((y_lo, y_hi), 1.0);
        let (lo, hi) = (
            10f64.powf(lo.log10().floor()),
            10f64.powf(hi.log10().ceil()),
        );
        let hi = if hi <= lo { lo * 10.0 } else { hi };
        plot(spec, path, &lines, x_range, (lo..hi).log_scale())
    } else {
        let hi = if y_hi > 0.0 && y_hi.is_finite() {
            y_hi * 1.15
        } else {
            1.0
        };
        plot(spec, path, &lines, x_range, 0.0..hi)
    }
}

/// Widens `(lo, hi)` by `factor` on a log scale; a default range when there is no data.
fn padded((lo, hi): (f64, f64), factor: f64) -> (f64, f64) {
    if !(lo.is_finite() && hi.is_finite()) || lo <= 0.0 {
        return (0.1, 10.0);
    }
    (lo / factor, hi * factor)
}

fn plot<X, Y>(
    spec: &ChartSpec,
    path: &Path,
    lines: &[Line],
    x_range: X,
    y_range: Y,
) -> Result<(), Box<dyn std::error::Error>>
where
    X: AsRangedCoord<Value = f64>,
    Y: AsRangedCoord<Value = f64>,
    X::CoordDescType: ValueFormatter<f64>,
    Y::CoordDescType: ValueFormatter<f64>,
{
    let root = SVGBackend::new(path, (1100, 600)).into_drawing_area();
    root.fill(&WHITE)?;
    // The legend gets its own panel on the right, so it never hides a line.
    let (plot_area, legend_area) = root.split_horizontally(830);
    let mut chart = ChartBuilder::on(&plot_area)
        .caption(spec.title, ("sans-serif", 22))
        .margin(20)
        .x_label_area_size(50)
        .y_label_area_size(80)
        .build_cartesian_2d(x_range, y_range)?;
    chart
        .configure_mesh()
        .x_desc("connections (log scale)")
        .y_desc(spec.y_label)
        .y_labels(12)
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| trim_number(*y))
        .draw()?;
    for (i, line) in lines.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        chart.draw_series(LineSeries::new(line.points.clone(), color.stroke_width(2)))?;
        chart.draw_series(
            line.points
                .iter()
                .map(|&p| Circle::new(p, 4, color.filled())),
        )?;
        let y = 70 + 26 * i as i32;
        legend_area.draw(&PathElement::new(
            vec![(0, y), (24, y)],
            color.stroke_width(3),
        ))?;
        legend_area.draw(&Text::new(
            line.label.clone(),
            (32, y - 7),
            ("sans-serif", 14).into_font(),
        ))?;
    }
    root.present()?;
    Ok(())
}

/// `12000` → `12000`, `0.25` → `0.25`, `1.5` → `1.5`: no trailing zeros on axis labels.
fn trim_number(y: f64) -> String {
    let text = if y.abs() >= 100.0 {
        format!("{y:.0}")
    } else {
        format!("{y:.2}")
    };
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text
    }
}
