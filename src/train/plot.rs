//! Plots drawn to SVG with plotters, for a reader who checks a reproduction: the
//! Okabe–Ito palette (told apart with any colour vision), one colour per method across
//! every plot, the legend beside the data rather than over it, the paper's value as a
//! marked band (mean ± std) in its method's colour, axis labels with units, and the
//! budget and seeds in the title.

use super::metrics::{EpochMetrics, StepMetrics};
use anyhow::{anyhow, Result};
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::Path;

/// Okabe and Ito's colour-blind-safe palette, black first.
pub const OKABE_ITO: [RGBColor; 8] = [
    RGBColor(0x00, 0x00, 0x00), // black
    RGBColor(0xE6, 0x9F, 0x00), // orange
    RGBColor(0x56, 0xB4, 0xE9), // sky blue
    RGBColor(0x00, 0x9E, 0x73), // bluish green
    RGBColor(0xF0, 0xE4, 0x42), // yellow
    RGBColor(0x00, 0x72, 0xB2), // blue
    RGBColor(0xD5, 0x5E, 0x00), // vermillion
    RGBColor(0xCC, 0x79, 0xA7), // reddish purple
];

/// The colours of series that are not one of the four methods, in order: first those
/// no method uses, then the methods' (where the figure does not draw that method), yellow
/// last (it is faint on white).
const OTHERS: [usize; 7] = [1, 7, 2, 5, 6, 3, 4];

/// The method a label names (RBD, FPD, NES or SGD), with its colour: RBD blue, FPD
/// vermillion, NES green, SGD black; `None` for a label that names none of them, or
/// several (a hybrid).
pub fn method_of(label: &str) -> Option<(&'static str, RGBColor)> {
    let has = |m: &str| {
        label
            .split(|c: char| !c.is_ascii_alphanumeric())
            .any(|w| w == m)
    };
    let hits: Vec<(&'static str, usize)> = [("RBD", 5), ("FPD", 6), ("NES", 3), ("SGD", 0)]
        .into_iter()
        .filter(|(m, _)| has(m))
        .collect();
    match hits.as_slice() {
        [(m, c)] => Some((m, OKABE_ITO[*c])),
        _ => None,
    }
}

/// A method's own colour wherever it is drawn (see [`method_of`]).
pub fn method_colour(label: &str) -> Option<RGBColor> {
    method_of(label).map(|m| m.1)
}

/// Colours for `labels`: the first label of each method takes the method's colour; the
/// others (other labels, and further variants of a method already drawn) take the rest
/// of the palette in order, so no two labels share a colour while the palette lasts.
pub fn colours(labels: &[String]) -> Vec<RGBColor> {
    // The methods' colours this figure draws for their first labels.
    let mut reserved: Vec<RGBColor> = Vec::new();
    for l in labels {
        if let Some(c) = method_colour(l) {
            if !reserved.contains(&c) {
                reserved.push(c);
            }
        }
    }
    let others = labels
        .iter()
        .enumerate()
        .filter(|(i, l)| {
            method_colour(l)
                .is_none_or(|c| labels[..*i].iter().any(|p| method_colour(p) == Some(c)))
        })
        .count();
    let categorical: Vec<RGBColor> = OTHERS
        .iter()
        .map(|i| OKABE_ITO[*i])
        .filter(|c| !reserved.contains(c))
        .collect();
    // More series than the palette has colours (a sweep over q or d): an ordered
    // colour-blind-safe scale instead, dark to light in the labels' order.
    let mut pool: Box<dyn Iterator<Item = RGBColor>> = if others > categorical.len() {
        Box::new((0..others).map(move |i| viridis(i as f64 / (others - 1) as f64)))
    } else {
        Box::new(categorical.into_iter().cycle())
    };
    let mut taken: Vec<RGBColor> = Vec::new();
    labels
        .iter()
        .map(|l| {
            let c = match method_colour(l) {
                Some(c) if !taken.contains(&c) => c,
                _ => pool.next().unwrap_or(OKABE_ITO[0]),
            };
            taken.push(c);
            c
        })
        .collect()
}

/// The viridis colour scale at `t` in [0, 1] (dark purple to yellow; readable with any
/// colour vision), interpolated between ten of its stops; the yellow end is cut short
/// of white's brightness.
fn viridis(t: f64) -> RGBColor {
    const STOPS: [(u8, u8, u8); 10] = [
        (0x44, 0x01, 0x54),
        (0x48, 0x28, 0x78),
        (0x3E, 0x4A, 0x89),
        (0x31, 0x68, 0x8E),
        (0x26, 0x82, 0x8E),
        (0x1F, 0x9E, 0x89),
        (0x35, 0xB7, 0x79),
        (0x6D, 0xCD, 0x59),
        (0xB4, 0xDE, 0x2C),
        (0xFD, 0xE7, 0x25),
    ];
    let x = t.clamp(0.0, 1.0) * 0.9 * (STOPS.len() - 1) as f64;
    let i = (x.floor() as usize).min(STOPS.len() - 2);
    let f = x - i as f64;
    let mix = |a: u8, b: u8| (a as f64 + (b as f64 - a as f64) * f).round() as u8;
    let (a, b) = (STOPS[i], STOPS[i + 1]);
    RGBColor(mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}

/// A line with a shaded range: (x, mean, low, high) per point.
#[derive(Clone, Debug)]
pub struct Band {
    /// Legend label.
    pub label: String,
    /// Points.
    pub points: Vec<(f64, f64, f64, f64)>,
    /// Colour.
    pub colour: RGBColor,
}

/// The paper's value: a band of mean ± std in its method's colour, a dashed line at the
/// mean and a diamond where the paper measured it.
#[derive(Clone, Debug)]
pub struct PaperMark {
    /// Legend label (`paper RBD 93.89 ± 0.02`).
    pub label: String,
    /// Mean.
    pub mean: f64,
    /// Standard deviation, where printed.
    pub std: Option<f64>,
    /// Where the paper measured it on the x axis (the last epoch; a sweep's x); the band
    /// spans the whole axis when it is the last epoch of a curve plot.
    pub x: f64,
    /// Across the whole x axis (a final value against a curve) or only at `x` (a point
    /// of a sweep).
    pub across: bool,
    /// Colour.
    pub colour: RGBColor,
}

/// A dashed horizontal line (a reference run's final value).
#[derive(Clone, Debug)]
pub struct Reference {
    /// Legend label.
    pub label: String,
    /// Its value.
    pub y: f64,
    /// Colour.
    pub colour: RGBColor,
}

/// Final values of one category of a table drawn: each seed, and their mean.
#[derive(Clone, Debug)]
pub struct Dots {
    /// Legend label.
    pub label: String,
    /// Position on the x axis (the category's index).
    pub x: f64,
    /// Each seed's value.
    pub values: Vec<f64>,
    /// Colour.
    pub colour: RGBColor,
}

/// One set of axes.
#[derive(Clone, Debug, Default)]
pub struct Panel {
    /// Its title (a table row).
    pub title: String,
    /// x axis label, with its unit.
    pub x_label: String,
    /// y axis label, with its unit.
    pub y_label: String,
    /// Logarithmic x axis.
    pub log_x: bool,
    /// Names of the x axis's categories (a table's columns), at 0, 1, ...
    pub categories: Vec<String>,
    /// Lines with bands.
    pub bands: Vec<Band>,
    /// Another artefact's mean curves, drawn thin and pale behind ours: the longer runs
    /// that a short artefact repeats (`quick`'s epoch on `table1`'s 100).
    pub context: Vec<Band>,
    /// The paper's values.
    pub paper: Vec<PaperMark>,
    /// Reference lines.
    pub references: Vec<Reference>,
    /// Vertical dashed rules (a hybrid's switch epoch), each in its series' colour.
    pub rules: Vec<(f64, RGBColor)>,
    /// Seeds' final values per category.
    pub dots: Vec<Dots>,
}

/// A figure: panels in a grid, one legend beside them.
#[derive(Clone, Debug)]
pub struct Figure {
    /// First title line (what it shows).
    pub title: String,
    /// Second title line (budget and seeds; what the bands are).
    pub subtitle: String,
    /// Panels, row by row.
    pub panels: Vec<Panel>,
    /// Panels per row.
    pub columns: usize,
    /// Lines of text under the legend (the differences the paper reports).
    pub notes: Vec<String>,
}

const PANEL: (u32, u32) = (560, 380);
const LEGEND_WIDTH: u32 = 330;
const TITLE_HEIGHT: u32 = 64;
const FONT: &str = "sans-serif";

fn failed<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow!("drawing the plot: {e:?}")
}

/// The figure as SVG text.
pub fn render(fig: &Figure) -> Result<String> {
    let columns = fig.columns.clamp(1, fig.panels.len().max(1));
    let rows = fig.panels.len().div_ceil(columns).max(1);
    let width = columns as u32 * PANEL.0 + LEGEND_WIDTH;
    // About 7.5 pixels a character at 15 px, 11 at 22 px: long titles wrap rather than
    // run off the figure's edge.
    let title = wrap(&fig.title, (width as usize - 32) / 11);
    let subtitle = wrap(&fig.subtitle, (width as usize - 32) * 2 / 15);
    let title_extra = 28 * title.len().saturating_sub(1) as u32;
    let title_height = TITLE_HEIGHT + title_extra + 19 * subtitle.len().saturating_sub(1) as u32;
    let size = (width, title_height + rows as u32 * PANEL.1);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
        root.fill(&WHITE).map_err(failed)?;
        let (top, body) = root.split_vertically(title_height);
        for (i, line) in title.iter().enumerate() {
            top.draw(&Text::new(
                line.clone(),
                (16, 10 + 28 * i as i32),
                (FONT, 22).into_font().color(&BLACK),
            ))
            .map_err(failed)?;
        }
        for (i, line) in subtitle.iter().enumerate() {
            top.draw(&Text::new(
                line.clone(),
                (16, 38 + title_extra as i32 + 19 * i as i32),
                (FONT, 15).into_font().color(&RGBColor(0x44, 0x44, 0x44)),
            ))
            .map_err(failed)?;
        }
        let (plots, legend) = body.split_horizontally(columns as u32 * PANEL.0);
        let areas = plots.split_evenly((rows, columns));
        for (panel, area) in fig.panels.iter().zip(areas.iter()) {
            draw_panel(area, panel)?;
        }
        draw_legend(&legend, fig)?;
        root.present().map_err(failed)?;
    }
    Ok(svg)
}

/// Writes the figure to `path`.
pub fn write(path: &Path, fig: &Figure) -> Result<()> {
    super::run_dir::write_atomic(path, render(fig)?.as_bytes())
}

/// The x and y ranges the panel's contents need.
fn extent(p: &Panel) -> ((f64, f64), (f64, f64)) {
    let (mut x0, mut x1, mut y0, mut y1) = (
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::INFINITY,
        f64::NEG_INFINITY,
    );
    let mut see = |x: Option<f64>, lo: f64, hi: f64| {
        if let Some(x) = x {
            x0 = x0.min(x);
            x1 = x1.max(x);
        }
        y0 = y0.min(lo);
        y1 = y1.max(hi);
    };
    for b in p.bands.iter().chain(&p.context) {
        for &(x, _, lo, hi) in &b.points {
            see(Some(x), lo, hi);
        }
    }
    for m in &p.paper {
        let s = m.std.unwrap_or(0.0);
        see(Some(m.x), m.mean - s, m.mean + s);
    }
    for r in &p.references {
        see(None, r.y, r.y);
    }
    for d in &p.dots {
        for v in &d.values {
            see(Some(d.x), *v, *v);
        }
    }
    if !p.categories.is_empty() {
        x0 = -0.5;
        x1 = p.categories.len() as f64 - 0.5;
    }
    if !x0.is_finite() {
        (x0, x1) = (1.0, 2.0);
    }
    if x1 <= x0 {
        (x0, x1) = if p.log_x {
            (x0 / 2.0, x0 * 2.0)
        } else {
            (x0 - 0.5, x0 + 0.5)
        };
    }
    if !y0.is_finite() {
        (y0, y1) = (0.0, 100.0);
    }
    let pad = ((y1 - y0) * 0.06).max(1e-3);
    // Room for the markers drawn at the ends of the x axis.
    let (x0, x1) = if !p.categories.is_empty() {
        (x0, x1)
    } else if p.log_x {
        (x0 / 1.4, x1 * 1.4)
    } else {
        (x0, x1 + (x1 - x0) * 0.03)
    };
    ((x0, x1), (y0 - pad, y1 + pad))
}

/// A tick label of a number: integers plain, powers of ten from 1000 as 10³, others
/// with as many decimals as the axis's span needs.
fn tick(x: f64, span: f64) -> String {
    let a = x.abs();
    if a >= 1000.0 && (a.log10() - a.log10().round()).abs() < 1e-9 {
        const SUP: [char; 10] = ['⁰', '¹', '²', '³', '⁴', '⁵', '⁶', '⁷', '⁸', '⁹'];
        let e = a.log10().round() as usize;
        let digits: String = e
            .to_string()
            .chars()
            .map(|c| SUP[c.to_digit(10).unwrap_or(0) as usize])
            .collect();
        return format!("{}10{digits}", if x < 0.0 { "−" } else { "" });
    }
    let decimals = if span >= 5.0 {
        0
    } else if span >= 0.5 {
        1
    } else if span >= 0.05 {
        2
    } else {
        3
    };
    format!("{x:.decimals$}")
}

fn draw_panel(area: &DrawingArea<SVGBackend<'_>, Shift>, p: &Panel) -> Result<()> {
    let ((x0, x1), (y0, y1)) = extent(p);
    let mut chart = ChartBuilder::on(area);
    chart
        .caption(&p.title, (FONT, 17))
        .margin(10)
        .margin_right(18)
        .x_label_area_size(42)
        .y_label_area_size(58);
    macro_rules! draw {
        ($c:expr) => {{
            let mut c = $c;
            let cats = p.categories.clone();
            let x_span = x1 - x0;
            let y_span = y1 - y0;
            let label_of = move |x: &f64| -> String {
                if cats.is_empty() {
                    tick(*x, x_span)
                } else {
                    let i = x.round();
                    if (x - i).abs() < 1e-6 && i >= 0.0 {
                        cats.get(i as usize).cloned().unwrap_or_default()
                    } else {
                        String::new()
                    }
                }
            };
            let y_label_of = move |y: &f64| tick(*y, y_span);
            let mut mesh = c.configure_mesh();
            mesh.x_desc(&p.x_label)
                .y_desc(&p.y_label)
                .axis_desc_style((FONT, 15))
                .label_style((FONT, 13))
                .max_light_lines(1)
                .light_line_style(RGBColor(0xF4, 0xF4, 0xF4))
                .bold_line_style(RGBColor(0xE0, 0xE0, 0xE0))
                .x_label_formatter(&label_of)
                .y_label_formatter(&y_label_of);
            if !p.categories.is_empty() {
                mesh.x_labels(p.categories.len() + 1).disable_x_mesh();
            }
            mesh.draw().map_err(failed)?;
            // The paper's bands first, under everything.
            for m in &p.paper {
                let s = m.std.unwrap_or(0.0);
                let (left, right) = if m.across {
                    (x0, x1)
                } else if p.log_x {
                    (m.x / 1.25, m.x * 1.25)
                } else {
                    let w = if p.categories.is_empty() {
                        (x1 - x0) * 0.02
                    } else {
                        0.3
                    };
                    (m.x - w, m.x + w)
                };
                if s > 0.0 {
                    c.draw_series(std::iter::once(Rectangle::new(
                        [(left, m.mean - s), (right, m.mean + s)],
                        m.colour.mix(0.18).filled(),
                    )))
                    .map_err(failed)?;
                }
                c.draw_series(DashedLineSeries::new(
                    vec![(left, m.mean), (right, m.mean)],
                    6,
                    4,
                    m.colour.mix(0.9).stroke_width(1),
                ))
                .map_err(failed)?;
                c.draw_series(std::iter::once(
                    EmptyElement::at((m.x, m.mean))
                        + Polygon::new(vec![(0, -7), (7, 0), (0, 7), (-7, 0)], m.colour.filled()),
                ))
                .map_err(failed)?;
            }
            for r in &p.references {
                c.draw_series(DashedLineSeries::new(
                    vec![(x0, r.y), (x1, r.y)],
                    10,
                    5,
                    r.colour.stroke_width(2),
                ))
                .map_err(failed)?;
            }
            for (x, colour) in &p.rules {
                c.draw_series(DashedLineSeries::new(
                    vec![(*x, y0), (*x, y1)],
                    5,
                    4,
                    colour.stroke_width(1),
                ))
                .map_err(failed)?;
            }
            for b in &p.context {
                let line: Vec<(f64, f64)> = b.points.iter().map(|q| (q.0, q.1)).collect();
                c.draw_series(LineSeries::new(line, b.colour.mix(0.55).stroke_width(2)))
                    .map_err(failed)?;
            }
            for b in &p.bands {
                if b.points.len() > 1 && b.points.iter().any(|q| q.3 > q.2) {
                    let mut poly: Vec<(f64, f64)> = b.points.iter().map(|q| (q.0, q.3)).collect();
                    poly.extend(b.points.iter().rev().map(|q| (q.0, q.2)));
                    c.draw_series(std::iter::once(Polygon::new(
                        poly,
                        b.colour.mix(0.2).filled(),
                    )))
                    .map_err(failed)?;
                }
                let line: Vec<(f64, f64)> = b.points.iter().map(|q| (q.0, q.1)).collect();
                c.draw_series(LineSeries::new(line.clone(), b.colour.stroke_width(2)))
                    .map_err(failed)?;
                if b.points.len() <= 12 {
                    c.draw_series(line.iter().map(|&q| Circle::new(q, 4, b.colour.filled())))
                        .map_err(failed)?;
                    // Error bars where the band has width at a lone point.
                    for q in &b.points {
                        if q.3 > q.2 {
                            c.draw_series(std::iter::once(PathElement::new(
                                vec![(q.0, q.2), (q.0, q.3)],
                                b.colour.stroke_width(2),
                            )))
                            .map_err(failed)?;
                        }
                    }
                }
            }
            for d in &p.dots {
                for (i, v) in d.values.iter().enumerate() {
                    // Seeds side by side, so equal values stay visible.
                    let off = (i as f64 - (d.values.len() as f64 - 1.0) / 2.0) * 0.07;
                    c.draw_series(std::iter::once(Circle::new(
                        (d.x + off, *v),
                        4,
                        d.colour.stroke_width(2),
                    )))
                    .map_err(failed)?;
                }
                if let Some(m) = crate::reproduce::stats::mean_std(&d.values) {
                    c.draw_series(std::iter::once(PathElement::new(
                        vec![(d.x - 0.2, m.0), (d.x + 0.2, m.0)],
                        d.colour.stroke_width(3),
                    )))
                    .map_err(failed)?;
                }
            }
        }};
    }
    if p.log_x {
        draw!(chart
            .build_cartesian_2d((x0.max(1e-12)..x1).log_scale(), y0..y1)
            .map_err(failed)?);
    } else {
        draw!(chart.build_cartesian_2d(x0..x1, y0..y1).map_err(failed)?);
    }
    Ok(())
}

/// One legend line: its swatch and text.
enum Swatch {
    Line(RGBColor),
    Pale(RGBColor),
    Dashed(RGBColor),
    Paper(RGBColor),
    Dot(RGBColor),
}

fn draw_legend(area: &DrawingArea<SVGBackend<'_>, Shift>, fig: &Figure) -> Result<()> {
    let mut items: Vec<(Swatch, String)> = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for p in &fig.panels {
        let mut add = |s: Swatch, l: &str| {
            if seen.insert(l.to_string()) {
                items.push((s, l.to_string()));
            }
        };
        for b in &p.bands {
            add(Swatch::Line(b.colour), &b.label);
        }
        for d in &p.dots {
            add(Swatch::Dot(d.colour), &d.label);
        }
        for b in &p.context {
            add(Swatch::Pale(b.colour), &b.label);
        }
        for r in &p.references {
            add(Swatch::Dashed(r.colour), &r.label);
        }
    }
    // The paper's marks after ours, in one block.
    for p in &fig.panels {
        for m in &p.paper {
            if seen.insert(m.label.clone()) {
                items.push((Swatch::Paper(m.colour), m.label.clone()));
            }
        }
    }
    let mut y = 30;
    let text = |s: &str, x: i32, y: i32, size: u32| {
        Text::new(
            s.to_string(),
            (x, y),
            (FONT, size).into_font().color(&BLACK),
        )
    };
    for (swatch, label) in &items {
        let mid = y + 8;
        match swatch {
            Swatch::Line(c) => area
                .draw(&PathElement::new(
                    vec![(12, mid), (44, mid)],
                    c.stroke_width(3),
                ))
                .map_err(failed)?,
            Swatch::Pale(c) => area
                .draw(&PathElement::new(
                    vec![(12, mid), (44, mid)],
                    c.mix(0.55).stroke_width(2),
                ))
                .map_err(failed)?,
            Swatch::Dashed(c) => {
                for x in [12, 24, 36] {
                    area.draw(&PathElement::new(
                        vec![(x, mid), (x + 7, mid)],
                        c.stroke_width(2),
                    ))
                    .map_err(failed)?;
                }
            }
            Swatch::Paper(c) => {
                area.draw(&Rectangle::new(
                    [(12, mid - 6), (44, mid + 6)],
                    c.mix(0.18).filled(),
                ))
                .map_err(failed)?;
                area.draw(&legend_diamond((28, mid), 6, *c))
                    .map_err(failed)?;
            }
            Swatch::Dot(c) => area
                .draw(&Circle::new((28, mid), 5, c.stroke_width(2)))
                .map_err(failed)?,
        }
        for (k, line) in wrap(label, 34).iter().enumerate() {
            area.draw(&text(line, 52, y + 18 * k as i32, 14))
                .map_err(failed)?;
        }
        y += 18 * wrap(label, 34).len() as i32 + 8;
    }
    y += 10;
    for note in &fig.notes {
        for line in wrap(note, 40) {
            area.draw(&text(&line, 12, y, 14)).map_err(failed)?;
            y += 18;
        }
        y += 6;
    }
    Ok(())
}

/// A filled diamond in pixel coordinates.
fn legend_diamond(at: (i32, i32), r: i32, colour: RGBColor) -> Polygon<(i32, i32)> {
    Polygon::new(
        vec![
            (at.0, at.1 - r),
            (at.0 + r, at.1),
            (at.0, at.1 + r),
            (at.0 - r, at.1),
        ],
        colour.filled(),
    )
}

/// `s` broken into lines of at most `width` characters (at spaces).
fn wrap(s: &str, width: usize) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    let mut line = String::new();
    for word in s.split_whitespace() {
        if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

/// A named series of (x, y) points.
pub struct Series {
    /// Legend label.
    pub label: String,
    /// Points.
    pub points: Vec<(f64, f64)>,
}

/// Draws a run's accuracy curves to `accuracy.svg`: validation and training accuracy
/// per epoch, the training accuracy of every logged step window, and the test accuracy
/// when it was measured.
pub fn draw_curves(dir: &Path, rows: &[EpochMetrics], steps: &[StepMetrics]) -> Result<()> {
    let epoch_band = |label: &str, colour: usize, f: &dyn Fn(&EpochMetrics) -> f64| Band {
        label: label.into(),
        points: rows
            .iter()
            .map(|r| {
                let y = 100.0 * f(r);
                (r.epoch as f64, y, y, y)
            })
            .collect(),
        colour: OKABE_ITO[colour],
    };
    let mut bands = vec![
        epoch_band("validation", 5, &|r| r.val_accuracy),
        epoch_band("train (augmented), per epoch", 6, &|r| r.train_accuracy),
        Band {
            label: "train (augmented), per logged steps".into(),
            points: steps
                .iter()
                .map(|s| {
                    let y = 100.0 * s.train_accuracy;
                    (s.epoch_progress, y, y, y)
                })
                .collect(),
            colour: OKABE_ITO[2],
        },
    ];
    if !rows.is_empty() && rows.iter().all(|r| r.test_accuracy.is_some()) {
        bands.push(epoch_band("test", 0, &|r| r.test_accuracy.unwrap_or(0.0)));
    }
    write(
        &dir.join("accuracy.svg"),
        &Figure {
            title: "accuracy of this run".into(),
            subtitle: format!("{} epochs", rows.len()),
            panels: vec![Panel {
                x_label: "epoch".into(),
                y_label: "accuracy (%)".into(),
                bands,
                ..Panel::default()
            }],
            columns: 1,
            notes: Vec::new(),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_method_keeps_its_colour_and_others_take_the_rest() {
        let labels: Vec<String> = [
            "SGD",
            "q = 1",
            "RBD only",
            "NES (one update per epoch)",
            "q = 2",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let c = colours(&labels);
        assert_eq!(c[0], OKABE_ITO[0]);
        assert_eq!(c[2], OKABE_ITO[5]);
        assert_eq!(c[3], OKABE_ITO[3]);
        // A second variant of a method drawn beside the first gets a colour of its own.
        let nes: Vec<String> = ["NES", "NES (tuned)"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let c2 = colours(&nes);
        assert_eq!(c2[0], OKABE_ITO[3]);
        assert_ne!(c2[1], c2[0]);
        assert!(method_of("NES (tuned)").is_some() && c2[1] != OKABE_ITO[5]);
        // Non-methods get distinct colours that are no method's drawn here.
        assert_ne!(c[1], c[4]);
        for x in [c[1], c[4]] {
            assert!(![c[0], c[2], c[3]].contains(&x));
        }
        // A hybrid names two methods: not one method's colour.
        assert_eq!(method_colour("RBD then SGD"), None);
        assert_eq!(method_colour("RBD (Table 4's rate)"), Some(OKABE_ITO[5]));
    }

    #[test]
    fn a_figure_has_its_titles_legend_and_the_papers_band() {
        let fig = Figure {
            title: "Table 1 — FC-MNIST".into(),
            subtitle: "100 epochs, 3 seeds".into(),
            panels: vec![Panel {
                title: "FC-MNIST".into(),
                x_label: "epoch".into(),
                y_label: "validation accuracy (%)".into(),
                bands: vec![Band {
                    label: "RBD".into(),
                    points: vec![(1.0, 50.0, 49.0, 51.0), (2.0, 60.0, 59.0, 62.0)],
                    colour: OKABE_ITO[5],
                }],
                paper: vec![PaperMark {
                    label: "paper RBD 93.893 ± 0.024".into(),
                    mean: 93.893,
                    std: Some(0.024),
                    x: 2.0,
                    across: true,
                    colour: OKABE_ITO[5],
                }],
                ..Panel::default()
            }],
            columns: 1,
            notes: vec!["RBD − FPD: ours +1.00, paper +20.5".into()],
        };
        let svg = render(&fig).unwrap();
        for text in [
            "Table 1 — FC-MNIST",
            "100 epochs, 3 seeds",
            "paper RBD 93.893",
            "validation accuracy (%)",
            "RBD − FPD",
        ] {
            assert!(svg.contains(text), "{text} missing");
        }
        // The RBD blue draws both our line and the paper's band.
        assert!(svg.matches("#0072B2").count() >= 3, "{svg}");
        // Deterministic: the same figure gives the same bytes.
        assert_eq!(render(&fig).unwrap(), svg);
    }

    /// A title wider than the figure wraps at spaces (the quick job's ran off the edge):
    /// no line longer than the width allows, every word kept, the figure taller.
    #[test]
    fn a_long_title_wraps_inside_the_figure() {
        let long = "Table 1, first row: validation accuracy against epoch, d = 250, on the committed runs of table1 — FC-MNIST";
        let fig = |title: &str| Figure {
            title: title.into(),
            subtitle: "1 epoch, 1 seed".into(),
            panels: vec![Panel::default()],
            columns: 1,
            notes: vec![],
        };
        let svg = render(&fig(long)).unwrap();
        // One panel: 890 px wide, (890 − 32) / 11 = 78 characters a title line.
        let lines = wrap(long, 78);
        assert_eq!(lines.len(), 2, "{lines:?}");
        for l in &lines {
            assert!(l.chars().count() <= 78 && svg.contains(l.as_str()), "{l}");
        }
        assert!(!svg.contains(long));
        let height = |svg: &str| {
            let h = svg.split("height=\"").nth(1).unwrap();
            h[..h.find('"').unwrap()].parse::<u32>().unwrap()
        };
        assert_eq!(height(&svg), height(&render(&fig("short")).unwrap()) + 28);
    }

    #[test]
    fn a_sweep_longer_than_the_palette_takes_distinct_colours_in_order() {
        let mut labels: Vec<String> = vec!["SGD only".into(), "RBD only".into()];
        labels.extend((1..=7).map(|q| format!("q = {q}")));
        let c = colours(&labels);
        for i in 0..c.len() {
            for j in 0..i {
                assert_ne!(c[i], c[j], "{} and {}", labels[i], labels[j]);
            }
        }
        assert_eq!((c[0], c[1]), (OKABE_ITO[0], OKABE_ITO[5]));
        assert_eq!(viridis(0.0), RGBColor(0x44, 0x01, 0x54));
    }

    #[test]
    fn ticks_print_as_a_reader_reads_them() {
        assert_eq!(tick(1000.0, 1e4), "10³");
        assert_eq!(tick(10000.0, 1e4), "10⁴");
        assert_eq!(tick(100.0, 1e4), "100");
        assert_eq!(tick(93.5, 20.0), "94");
        assert_eq!(tick(0.25, 0.3), "0.25");
        assert_eq!(tick(0.0097, 0.01), "0.010");
    }

    #[test]
    fn long_labels_wrap_at_spaces() {
        assert_eq!(wrap("a bb ccc dddd", 6), ["a bb", "ccc", "dddd"]);
        assert_eq!(wrap("", 6), Vec::<String>::new());
    }
}
