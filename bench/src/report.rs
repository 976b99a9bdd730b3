//! The results: rows of ours / Python's / ratio / fraction of the ceiling,
//! checked against the targets; the table on stdout, the JSON file,
//! and the chart of throughput against concurrency.

use std::fmt::Write as _;
use std::path::Path;

use plotters::prelude::*;
use serde_json::{json, Value as Json};

use super::png;

/// Which way is better for a figure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Better {
    Higher,
    Lower,
}

/// A target of the issue for one row.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Target {
    /// Ours at least this many times better than Python's.
    Ratio(f64),
    /// Ours at least this fraction of the ceiling.
    Ceiling(f64),
    /// Ours within this factor of the ceiling (for bulk: ceiling / ours ≤ x).
    WithinOfCeiling(f64),
    /// Ours at most this much (in the row's unit), whatever Python's is.
    AtMost(f64),
}

impl Target {
    fn describe(self) -> String {
        match self {
            Target::Ratio(x) => format!("≥{x}×"),
            Target::Ceiling(f) => format!("≥{:.0}% ceil", f * 100.0),
            Target::WithinOfCeiling(x) => format!("≥1/{x} ceil"),
            Target::AtMost(x) => format!("≤{x}"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Row {
    pub group: &'static str,
    pub workload: String,
    pub unit: &'static str,
    pub better: Better,
    pub ours: Option<f64>,
    pub python: Option<f64>,
    pub ceiling: Option<f64>,
    pub targets: Vec<Target>,
    pub note: String,
}

impl Row {
    pub fn new(group: &'static str, workload: impl Into<String>, unit: &'static str) -> Row {
        Row {
            group,
            workload: workload.into(),
            unit,
            better: Better::Higher,
            ours: None,
            python: None,
            ceiling: None,
            targets: Vec::new(),
            note: String::new(),
        }
    }

    /// How many times better ours is than Python's (>1: ours is better).
    pub fn ratio(&self) -> Option<f64> {
        let (ours, python) = (self.ours?, self.python?);
        let ratio = match self.better {
            Better::Higher => ours / python,
            Better::Lower => python / ours,
        };
        ratio.is_finite().then_some(ratio)
    }

    /// Ours as a fraction of the ceiling.
    pub fn of_ceiling(&self) -> Option<f64> {
        let fraction = self.ours? / self.ceiling?;
        fraction.is_finite().then_some(fraction)
    }

    /// `Some(true)` if every target is met, `Some(false)` if one is
    /// missed, `None` without targets or figures to judge.
    pub fn met(&self) -> Option<bool> {
        if self.targets.is_empty() {
            return None;
        }
        let mut all = true;
        for target in &self.targets {
            let met = match *target {
                Target::Ratio(x) => self.ratio().map(|r| r >= x).or_else(|| {
                    // Python's figure is zero (it never answered): any
                    // figure of ours is infinitely better
                    (self.python == Some(0.0) && self.ours.is_some_and(|o| o > 0.0)).then_some(true)
                }),
                Target::Ceiling(f) => self.of_ceiling().map(|c| c >= f),
                Target::WithinOfCeiling(x) => self.of_ceiling().map(|c| c * x >= 1.0),
                Target::AtMost(x) => self.ours.map(|o| o <= x),
            };
            all &= met?;
        }
        Some(all)
    }

    pub fn to_json(&self) -> Json {
        json!({
            "group": self.group,
            "workload": self.workload,
            "unit": self.unit,
            "better": match self.better { Better::Higher => "higher", Better::Lower => "lower" },
            "ours": self.ours,
            "python": self.python,
            "ceiling": self.ceiling,
            "ratio": self.ratio(),
            "of_ceiling": self.of_ceiling(),
            "targets": self.targets.iter().map(|t| t.describe()).collect::<Vec<_>>(),
            "met": self.met(),
            "note": self.note,
        })
    }
}

/// A figure with three significant digits or so, and a thousands gap.
pub fn figure(value: Option<f64>) -> String {
    let Some(value) = value else {
        return "-".into();
    };
    if !value.is_finite() {
        return "-".into();
    }
    if value == 0.0 {
        return "0".into();
    }
    let magnitude = value.abs();
    if magnitude >= 1000.0 {
        let whole = value.round() as i64;
        let digits = whole.unsigned_abs().to_string();
        let mut out = String::new();
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i) % 3 == 0 {
                out.push(' ');
            }
            out.push(c);
        }
        if whole < 0 {
            out.insert(0, '-');
        }
        out
    } else if magnitude >= 100.0 {
        format!("{value:.0}")
    } else if magnitude >= 10.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.2}")
    }
}

/// The table, grouped, as plain text.
pub fn table(rows: &[Row]) -> String {
    let header = [
        "workload",
        "unit",
        "ours",
        "Python's",
        "ratio",
        "of ceiling",
        "target",
        "",
    ];
    let mut lines: Vec<[String; 8]> = Vec::new();
    let mut groups: Vec<Option<&str>> = Vec::new();
    let mut last_group = None;
    for row in rows {
        if last_group != Some(row.group) {
            groups.push(Some(row.group));
            lines.push(Default::default());
            last_group = Some(row.group);
        }
        groups.push(None);
        lines.push([
            row.workload.clone(),
            row.unit.into(),
            figure(row.ours),
            figure(row.python),
            match row.ratio() {
                Some(r) => format!("{}×", figure(Some(r))),
                // Python's did nothing at all in the time ours worked
                None if row.python == Some(0.0) && row.ours.is_some_and(|o| o > 0.0) => "∞".into(),
                None => "-".into(),
            },
            row.of_ceiling()
                .map_or("-".into(), |c| format!("{:.0}%", c * 100.0)),
            row.targets
                .iter()
                .map(|t| t.describe())
                .collect::<Vec<_>>()
                .join(" "),
            match row.met() {
                Some(true) => "met".into(),
                Some(false) => "MISSED".into(),
                None => String::new(),
            },
        ]);
    }
    let mut widths = header.map(|h| h.chars().count());
    for line in &lines {
        for (width, cell) in widths.iter_mut().zip(line) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let render = |cells: &[String], out: &mut String| {
        let mut text = String::new();
        for (i, (cell, width)) in cells.iter().zip(widths).enumerate() {
            let pad = width - cell.chars().count();
            // names left, figures right
            if i < 2 {
                let _ = write!(text, "{cell}{}  ", " ".repeat(pad));
            } else {
                let _ = write!(text, "{}{cell}  ", " ".repeat(pad));
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    render(&header.map(String::from), &mut out);
    for (line, group) in lines.iter().zip(&groups) {
        match group {
            Some(name) => {
                let _ = writeln!(out, "-- {name}");
            }
            None => render(line, &mut out),
        }
    }
    out
}

/// One line of the chart: throughput at each concurrency.
#[derive(Debug, Clone)]
pub struct Series {
    pub name: String,
    /// "ping" or "call": which panel.
    pub op: &'static str,
    pub points: Vec<(f64, f64)>,
}

const FONT_PATHS: [&str; 2] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
];

/// Registers a system font for the chart's text; `false` if none is found
/// (the chart is then drawn without text).
fn register_font() -> bool {
    for path in FONT_PATHS {
        if let Ok(bytes) = std::fs::read(path) {
            // plotters keeps fonts for the life of the process
            let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
            if plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_ok() {
                return true;
            }
        }
    }
    false
}

const PALETTE: [RGBColor; 6] = [
    RGBColor(0x1f, 0x77, 0xb4),
    RGBColor(0xd6, 0x27, 0x28),
    RGBColor(0x2c, 0xa0, 0x2c),
    RGBColor(0xff, 0x7f, 0x0e),
    RGBColor(0x94, 0x67, 0xbd),
    RGBColor(0x33, 0x33, 0x33),
];

/// Draws the throughput of every series against concurrency (log scale),
/// pings left and calls right, and writes it as a PNG.
pub fn chart(series: &[Series], title: &str, path: &Path) -> Result<(), String> {
    const SIZE: (u32, u32) = (1200, 520);
    let text = register_font();
    let mut pixels = vec![0u8; SIZE.0 as usize * SIZE.1 as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut pixels, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let root = if text {
            root.titled(title, ("sans-serif", 20))
                .map_err(|e| e.to_string())?
        } else {
            root
        };
        let panels = root.split_evenly((1, 2));
        for (panel, op) in panels.iter().zip(["ping", "call"]) {
            let lines: Vec<&Series> = series.iter().filter(|s| s.op == op).collect();
            let top = lines
                .iter()
                .flat_map(|s| s.points.iter().map(|p| p.1))
                .fold(1.0f64, f64::max)
                * 1.1;
            let mut builder = ChartBuilder::on(panel);
            builder.margin(12);
            if text {
                builder
                    .caption(format!("{op}s/s against connections"), ("sans-serif", 16))
                    .x_label_area_size(36)
                    .y_label_area_size(70);
            }
            let mut chart = builder
                .build_cartesian_2d(
                    (1f64..64f64)
                        .log_scale()
                        .with_key_points(vec![1.0, 4.0, 16.0, 64.0]),
                    0f64..top,
                )
                .map_err(|e| e.to_string())?;
            if text {
                chart
                    .configure_mesh()
                    .x_desc("connections")
                    .y_desc(format!("{op}s/s"))
                    .x_label_formatter(&|x| format!("{x:.0}"))
                    .y_label_formatter(&|y| figure(Some(*y)))
                    .draw()
                    .map_err(|e| e.to_string())?;
            }
            for (index, line) in lines.iter().enumerate() {
                let color = PALETTE[index % PALETTE.len()];
                let drawn = chart
                    .draw_series(LineSeries::new(line.points.clone(), color.stroke_width(2)))
                    .map_err(|e| e.to_string())?;
                if text {
                    drawn.label(line.name.clone()).legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
                    });
                }
                chart
                    .draw_series(
                        line.points
                            .iter()
                            .map(|p| Circle::new(*p, 3, color.filled())),
                    )
                    .map_err(|e| e.to_string())?;
            }
            if text {
                chart
                    .configure_series_labels()
                    .background_style(WHITE.mix(0.85))
                    .border_style(BLACK)
                    .position(SeriesLabelPosition::UpperLeft)
                    .label_font(("sans-serif", 13))
                    .draw()
                    .map_err(|e| e.to_string())?;
            }
        }
        root.present().map_err(|e| e.to_string())?;
    }
    write_png(SIZE, &pixels, path)
}

/// Draws `rows` as groups of bars (ours, Python's and the ceiling, where a
/// row has them), one group per row, with their values written above, and
/// writes it as a PNG. `log`: a logarithmic scale, for rows whose figures
/// are orders of magnitude apart.
pub fn bars(rows: &[&Row], title: &str, log: bool, path: &Path) -> Result<(), String> {
    // room for each group's label under it
    let size = (1200.max(200 * rows.len() as u32), 460);
    const SIDES: [(&str, RGBColor); 3] = [
        ("rpycd", PALETTE[0]),
        ("Python rpyc", PALETTE[1]),
        ("ceiling", PALETTE[5]),
    ];
    let figures = |row: &Row| [row.ours, row.python, row.ceiling];
    let values: Vec<f64> = rows
        .iter()
        .flat_map(|row| figures(row))
        .flatten()
        .filter(|v| v.is_finite() && *v > 0.0)
        .collect();
    if values.is_empty() {
        return Err("nothing to draw".into());
    }
    // the bars' heights: log10 of the figure on a log scale, so that
    // one axis type serves both scales
    let height = |v: f64| if log { v.log10() } else { v };
    let top = values.iter().copied().fold(f64::MIN, f64::max);
    let bottom = values.iter().copied().fold(f64::MAX, f64::min);
    // whole decades on a log scale, and room above the bars for the legend
    let (low, high) = if log {
        ((bottom.log10() - 0.3).floor(), (top.log10() + 0.9).ceil())
    } else {
        (0.0, top * 1.4)
    };
    let unit = rows.first().map_or("", |row| row.unit);
    let text = register_font();
    let mut pixels = vec![0u8; size.0 as usize * size.1 as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut pixels, size).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let mut builder = ChartBuilder::on(&root);
        builder.margin(14);
        if text {
            builder
                .caption(title, ("sans-serif", 20))
                .x_label_area_size(40)
                .y_label_area_size(70);
        }
        let mut chart = builder
            .build_cartesian_2d(0f64..rows.len() as f64, low..high)
            .map_err(|e| e.to_string())?;
        if text {
            let names: Vec<String> = rows.iter().map(|row| row.workload.clone()).collect();
            chart
                .configure_mesh()
                .disable_x_mesh()
                .light_line_style(WHITE)
                .y_labels(if log { (high - low) as usize + 1 } else { 6 })
                .x_labels(rows.len() * 2 + 1)
                .x_label_formatter(&|x| {
                    // a label under the middle of each group only
                    let index = x.floor() as usize;
                    let middle = (x - x.floor() - 0.5).abs() < 1e-6;
                    match names.get(index) {
                        Some(name) if middle => name.clone(),
                        _ => String::new(),
                    }
                })
                .y_desc(format!("{unit}{}", if log { " (log scale)" } else { "" }))
                .y_label_formatter(&|y| figure(Some(if log { 10f64.powf(*y) } else { *y })))
                .draw()
                .map_err(|e| e.to_string())?;
        }
        for (side, (name, color)) in SIDES.iter().enumerate() {
            let present: Vec<(usize, f64)> = rows
                .iter()
                .enumerate()
                .filter_map(|(index, row)| figures(row)[side].map(|v| (index, v)))
                .filter(|(_, v)| v.is_finite() && *v > 0.0)
                .collect();
            if present.is_empty() {
                continue;
            }
            let bar = |index: usize| {
                let left = index as f64 + 0.1 + side as f64 * 0.27;
                (left, left + 0.25)
            };
            let drawn = chart
                .draw_series(present.iter().map(|&(index, value)| {
                    let (left, right) = bar(index);
                    Rectangle::new([(left, low), (right, height(value))], color.filled())
                }))
                .map_err(|e| e.to_string())?;
            if text {
                drawn.label(*name).legend(move |(x, y)| {
                    Rectangle::new([(x, y - 5), (x + 14, y + 5)], color.filled())
                });
                chart
                    .draw_series(present.iter().map(|&(index, value)| {
                        let (left, _) = bar(index);
                        Text::new(
                            figure(Some(value)),
                            (left, height(value) + (high - low) * 0.035),
                            ("sans-serif", 12),
                        )
                    }))
                    .map_err(|e| e.to_string())?;
            }
        }
        if text {
            chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK)
                .position(SeriesLabelPosition::UpperRight)
                .label_font(("sans-serif", 13))
                .draw()
                .map_err(|e| e.to_string())?;
        }
        root.present().map_err(|e| e.to_string())?;
    }
    write_png(size, &pixels, path)
}

fn write_png(size: (u32, u32), pixels: &[u8], path: &Path) -> Result<(), String> {
    let png = png::encode_rgb(size.0, size.1, pixels).map_err(|e| e.to_string())?;
    std::fs::write(path, png).map_err(|e| format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(ours: f64, python: f64) -> Row {
        Row {
            ours: Some(ours),
            python: Some(python),
            ..Row::new("g", "w", "ops/s")
        }
    }

    #[test]
    fn ratio_says_how_many_times_better_ours_is() {
        assert_eq!(row(400.0, 100.0).ratio(), Some(4.0));
        let lower = Row {
            better: Better::Lower,
            ..row(25.0, 100.0)
        };
        assert_eq!(lower.ratio(), Some(4.0));
        assert_eq!(row(1.0, 0.0).ratio(), None);
    }

    #[test]
    fn targets_are_judged_on_ratio_and_ceiling() {
        let mut r = row(90.0, 10.0);
        r.ceiling = Some(100.0);
        r.targets = vec![Target::Ratio(4.0), Target::Ceiling(0.85)];
        assert_eq!(r.met(), Some(true));
        r.targets.push(Target::Ratio(10.0));
        assert_eq!(r.met(), Some(false));
        r.targets = vec![Target::WithinOfCeiling(2.0)];
        assert_eq!(r.met(), Some(true));
        r.ours = Some(40.0);
        assert_eq!(r.met(), Some(false));
        assert_eq!(Row::new("g", "w", "u").met(), None);
        // Python never answered: ours wins outright
        let mut stalled = row(5.0, 0.0);
        stalled.targets = vec![Target::Ratio(2.0)];
        assert_eq!(stalled.met(), Some(true));
    }

    #[test]
    fn bars_are_drawn_on_either_scale_and_refuse_nothing_to_draw() {
        let dir = std::env::temp_dir().join(format!("rpycd-bench-bars-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let mut with_ceiling = row(300.0, 2.0);
        with_ceiling.ceiling = Some(2500.0);
        let rows = [&with_ceiling, &row(5.0, 26.0)];
        for log in [false, true] {
            let path = dir.join(format!("bars-{log}.png"));
            bars(&rows, "t", log, &path).expect("drawn");
            let png = std::fs::read(&path).expect("written");
            assert_eq!(
                png[..8],
                [0x89, b'P', b'N', b'G', b'\r', b'\n', 0x1a, b'\n']
            );
        }
        let empty = Row::new("g", "w", "u");
        assert!(bars(&[&empty], "t", true, &dir.join("none.png")).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn figures_are_short() {
        assert_eq!(figure(Some(1_234_567.4)), "1 234 567");
        assert_eq!(figure(Some(123.4)), "123");
        assert_eq!(figure(Some(12.34)), "12.3");
        assert_eq!(figure(Some(1.234)), "1.23");
        assert_eq!(figure(None), "-");
        assert_eq!(figure(Some(f64::NAN)), "-");
    }

    #[test]
    fn table_lists_groups_and_verdicts() {
        let mut r = row(90.0, 10.0);
        r.targets = vec![Target::Ratio(4.0)];
        let text = table(&[r]);
        assert!(text.contains("-- g"));
        assert!(text.contains("9.00×"));
        assert!(text.contains("met"));
        let stalled = table(&[row(5.0, 0.0)]);
        assert!(stalled.contains('∞'));
    }
}
