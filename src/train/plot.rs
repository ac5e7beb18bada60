//! Accuracy curves drawn to SVG with plotters.

use super::metrics::{EpochMetrics, StepMetrics};
use anyhow::Result;
use plotters::prelude::*;
use std::path::Path;

/// A named series of (x, y) points.
pub struct Series {
    /// Legend label.
    pub label: String,
    /// Points.
    pub points: Vec<(f64, f64)>,
}

/// Draws `series` as lines with markers into an SVG at `path`.
pub fn line_chart(
    path: &Path,
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series],
    log_x: bool,
) -> Result<()> {
    let root = SVGBackend::new(path, (900, 560)).into_drawing_area();
    root.fill(&WHITE)?;
    let pts = series.iter().flat_map(|s| s.points.iter());
    let (mut x0, mut x1, mut y0, mut y1) = (
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::INFINITY,
        f64::NEG_INFINITY,
    );
    for &(x, y) in pts {
        x0 = x0.min(x);
        x1 = x1.max(x);
        y0 = y0.min(y);
        y1 = y1.max(y);
    }
    if !x0.is_finite() {
        (x0, x1, y0, y1) = (0.0, 1.0, 0.0, 1.0);
    }
    if x1 <= x0 {
        x1 = x0 + 1.0;
    }
    let pad = ((y1 - y0) * 0.05).max(1e-3);
    let (y0, y1) = (y0 - pad, y1 + pad);
    let mut chart = ChartBuilder::on(&root);
    chart
        .caption(title, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60);
    let colors = [&BLUE, &RED, &GREEN, &MAGENTA, &CYAN, &BLACK];
    if log_x {
        let mut c = chart.build_cartesian_2d((x0.max(1e-12)..x1).log_scale(), y0..y1)?;
        c.configure_mesh().x_desc(x_label).y_desc(y_label).draw()?;
        for (i, s) in series.iter().enumerate() {
            let color = colors[i % colors.len()];
            c.draw_series(LineSeries::new(s.points.clone(), color))?
                .label(s.label.clone())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
            c.draw_series(s.points.iter().map(|&p| Circle::new(p, 3, color.filled())))?;
        }
        c.configure_series_labels()
            .border_style(BLACK)
            .background_style(WHITE)
            .draw()?;
    } else {
        let mut c = chart.build_cartesian_2d(x0..x1, y0..y1)?;
        c.configure_mesh().x_desc(x_label).y_desc(y_label).draw()?;
        for (i, s) in series.iter().enumerate() {
            let color = colors[i % colors.len()];
            c.draw_series(LineSeries::new(s.points.clone(), color))?
                .label(s.label.clone())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
            c.draw_series(s.points.iter().map(|&p| Circle::new(p, 3, color.filled())))?;
        }
        c.configure_series_labels()
            .border_style(BLACK)
            .background_style(WHITE)
            .draw()?;
    }
    root.present()?;
    Ok(())
}

/// Draws a run's accuracy curves to `accuracy.svg`: validation and training accuracy
/// per epoch, the training accuracy of every logged step window, and the test accuracy
/// when it was measured.
pub fn draw_curves(dir: &Path, rows: &[EpochMetrics], steps: &[StepMetrics]) -> Result<()> {
    let epoch_series = |label: &str, f: &dyn Fn(&EpochMetrics) -> f64| Series {
        label: label.into(),
        points: rows
            .iter()
            .map(|r| (r.epoch as f64, 100.0 * f(r)))
            .collect(),
    };
    let mut series = vec![
        epoch_series("validation", &|r| r.val_accuracy),
        epoch_series("train (augmented), per epoch", &|r| r.train_accuracy),
        Series {
            label: "train (augmented), per logged steps".into(),
            points: steps
                .iter()
                .map(|s| (s.epoch_progress, 100.0 * s.train_accuracy))
                .collect(),
        },
    ];
    if !rows.is_empty() && rows.iter().all(|r| r.test_accuracy.is_some()) {
        series.push(epoch_series("test", &|r| r.test_accuracy.unwrap_or(0.0)));
    }
    line_chart(
        &dir.join("accuracy.svg"),
        "accuracy",
        "epoch",
        "accuracy (%)",
        &series,
        false,
    )
}

/// A series with a band: mean points and a (low, high) range at each x.
pub struct Band {
    /// Legend label.
    pub label: String,
    /// (x, mean, low, high).
    pub points: Vec<(f64, f64, f64, f64)>,
}

/// Draws each band as a shaded range around its mean line (seeds' spread), into an
/// SVG at `path`.
pub fn band_chart(
    path: &Path,
    title: &str,
    x_label: &str,
    y_label: &str,
    bands: &[Band],
    log_x: bool,
) -> Result<()> {
    let root = SVGBackend::new(path, (900, 560)).into_drawing_area();
    root.fill(&WHITE)?;
    let (mut x0, mut x1, mut y0, mut y1) = (
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::INFINITY,
        f64::NEG_INFINITY,
    );
    for &(x, _, lo, hi) in bands.iter().flat_map(|b| b.points.iter()) {
        x0 = x0.min(x);
        x1 = x1.max(x);
        y0 = y0.min(lo);
        y1 = y1.max(hi);
    }
    if !x0.is_finite() {
        (x0, x1, y0, y1) = (1.0, 2.0, 0.0, 1.0);
    }
    if x1 <= x0 {
        x1 = x0 + 1.0;
    }
    let pad = ((y1 - y0) * 0.05).max(1e-3);
    let (y0, y1) = (y0 - pad, y1 + pad);
    let colors = [&BLUE, &RED, &GREEN, &MAGENTA, &CYAN, &BLACK];
    let mut chart = ChartBuilder::on(&root);
    chart
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60);
    macro_rules! draw {
        ($c:expr) => {{
            let mut c = $c;
            c.configure_mesh().x_desc(x_label).y_desc(y_label).draw()?;
            for (i, b) in bands.iter().enumerate() {
                let color = colors[i % colors.len()];
                let mut area: Vec<(f64, f64)> = b.points.iter().map(|p| (p.0, p.3)).collect();
                area.extend(b.points.iter().rev().map(|p| (p.0, p.2)));
                if b.points.len() > 1 {
                    c.draw_series(std::iter::once(Polygon::new(
                        area,
                        color.mix(0.15).filled(),
                    )))?;
                }
                let line: Vec<(f64, f64)> = b.points.iter().map(|p| (p.0, p.1)).collect();
                c.draw_series(LineSeries::new(line.clone(), color.stroke_width(2)))?
                    .label(b.label.clone())
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
                if b.points.len() <= 12 {
                    c.draw_series(line.iter().map(|&p| Circle::new(p, 3, color.filled())))?;
                }
            }
            c.configure_series_labels()
                .border_style(BLACK)
                .background_style(WHITE.mix(0.8))
                .draw()?;
        }};
    }
    if log_x {
        draw!(chart.build_cartesian_2d((x0.max(1e-12)..x1).log_scale(), y0..y1)?);
    } else {
        draw!(chart.build_cartesian_2d(x0..x1, y0..y1)?);
    }
    root.present()?;
    Ok(())
}
