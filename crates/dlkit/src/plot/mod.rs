//! Charts for the notebooks and the command line: line charts (training curves, learning-rate
//! finder, error against a reference line) and bar charts (one value per category).
//!
//! A chart is described with a builder and then shown inline in evcxr (a cell that ends with
//! the chart calls [`LineChart::evcxr_display`]), turned into an SVG string, or saved as an
//! `.svg` or `.png` file:
//!
//! ```no_run
//! use dlkit::plot::LineChart;
//! let chart = LineChart::new("Test error")
//!     .x_label("epoch")
//!     .y_label("error (%)")
//!     .series("SGD", vec![(1.0, 30.0), (2.0, 20.0), (3.0, 12.0)])
//!     .hline("6% target", 6.0);
//! chart.save("error.png")?;
//! # Ok::<(), dlkit::Error>(())
//! ```
//!
//! Text is measured (and, in PNG files, drawn) with a small copy of DejaVu Sans compiled into
//! the library (`assets/DejaVuSans-subset.ttf`), so charts look the same on a laptop with no
//! system fonts. SVG output keeps titles and labels as real `<text>` elements.
//!
//! Rules for the data: points with a non-finite coordinate (NaN, ±∞, e.g. a diverged loss) are
//! skipped; on a logarithmic axis every remaining value must be positive, otherwise drawing
//! fails with [`Error::Plot`] naming the series (points are never dropped silently for that).

use std::path::Path;
use std::sync::OnceLock;

use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::{Error, Result};

/// The font compiled into the library (ASCII, Latin-1, Greek and a few maths signs).
static FONT_BYTES: &[u8] = include_bytes!("../assets/DejaVuSans-subset.ttf");

/// The family name every chart asks for; the bundled font is registered under it.
const FONT_FAMILY: &str = "sans-serif";

/// Width and height, in pixels, of a chart whose size was not set.
pub const DEFAULT_SIZE: (u32, u32) = (800, 480);

/// Distinct colours (the Tableau 10 palette) given to series in order.
const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

/// Series with at most this many points also get a dot at each point.
const MARK_POINTS_UP_TO: usize = 30;

/// Register the bundled font with plotters, once per process.
fn register_font() -> Result<()> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok = *REGISTERED.get_or_init(|| {
        plotters::style::register_font(FONT_FAMILY, FontStyle::Normal, FONT_BYTES).is_ok()
    });
    if ok {
        Ok(())
    } else {
        Err(Error::Plot("the bundled font assets/DejaVuSans-subset.ttf could not be read".into()))
    }
}

/// The colour of the `i`-th series (the palette repeats after ten).
fn colour(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

/// Turn a plotters drawing error into the crate's error.
fn plot_error<E: std::error::Error + Send + Sync>(e: DrawingAreaErrorKind<E>) -> Error {
    Error::Plot(e.to_string())
}

/// A tick label: plain decimals for ordinary magnitudes, `2.5e-5` style for tiny or huge ones.
fn tick_label(v: f64) -> String {
    if v == 0.0 {
        return "0".into();
    }
    let a = v.abs();
    if !(1e-3..1e5).contains(&a) {
        let s = format!("{v:.2e}");
        // "2.50e-5" -> "2.5e-5", "1.00e3" -> "1e3"
        match s.split_once('e') {
            Some((mantissa, exponent)) => {
                let m = mantissa.trim_end_matches('0').trim_end_matches('.');
                format!("{m}e{exponent}")
            }
            None => s,
        }
    } else {
        let s = format!("{v:.4}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// Where the legend box sits inside the plotting area.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LegendPosition {
    /// The place among the six below that covers the fewest data (the default; see
    /// [`least_covered_position`]).
    #[default]
    Auto,
    /// Top right corner.
    UpperRight,
    /// Top left corner.
    UpperLeft,
    /// Bottom right corner.
    LowerRight,
    /// Bottom left corner.
    LowerLeft,
    /// Right edge, half way up.
    MiddleRight,
    /// Left edge, half way up.
    MiddleLeft,
}

impl LegendPosition {
    /// The fixed places `Auto` chooses from, in order of preference, with the part of the plot
    /// (x from, x to, y from, y to, as fractions of the axes) a legend there may cover.
    const PLACES: [(LegendPosition, [f64; 4]); 6] = [
        (LegendPosition::UpperRight, [0.6, 1.0, 0.6, 1.0]),
        (LegendPosition::UpperLeft, [0.0, 0.4, 0.6, 1.0]),
        (LegendPosition::LowerRight, [0.6, 1.0, 0.0, 0.4]),
        (LegendPosition::LowerLeft, [0.0, 0.4, 0.0, 0.4]),
        (LegendPosition::MiddleRight, [0.6, 1.0, 0.3, 0.7]),
        (LegendPosition::MiddleLeft, [0.0, 0.4, 0.3, 0.7]),
    ];

    /// The matching plotters position (`Auto` must be resolved first; it maps to upper right).
    fn to_plotters(self) -> SeriesLabelPosition {
        match self {
            LegendPosition::Auto | LegendPosition::UpperRight => SeriesLabelPosition::UpperRight,
            LegendPosition::UpperLeft => SeriesLabelPosition::UpperLeft,
            LegendPosition::LowerRight => SeriesLabelPosition::LowerRight,
            LegendPosition::LowerLeft => SeriesLabelPosition::LowerLeft,
            LegendPosition::MiddleRight => SeriesLabelPosition::MiddleRight,
            LegendPosition::MiddleLeft => SeriesLabelPosition::MiddleLeft,
        }
    }
}

/// The legend place (see [`LegendPosition::PLACES`]) that the fewest drawn lines pass under:
/// every polyline is sampled at 16 points per segment, in axis fractions (log axes in
/// decades); ties go to the earlier place, so a falling curve keeps its legend top right.
pub fn least_covered_position(
    lines: &[Vec<(f64, f64)>],
    (x, y): (&std::ops::Range<f64>, &std::ops::Range<f64>),
    (log_x, log_y): (bool, bool),
) -> LegendPosition {
    let fraction = |v: f64, r: &std::ops::Range<f64>, log: bool| {
        if log { (v.log10() - r.start.log10()) / (r.end.log10() - r.start.log10()) } else { (v - r.start) / (r.end - r.start) }
    };
    let mut samples = Vec::new();
    for line in lines {
        let points: Vec<(f64, f64)> = line
            .iter()
            .filter(|(a, b)| a.is_finite() && b.is_finite())
            .map(|&(a, b)| (fraction(a, x, log_x), fraction(b, y, log_y)))
            .collect();
        samples.extend(points.first().copied());
        for pair in points.windows(2) {
            let ((x0, y0), (x1, y1)) = (pair[0], pair[1]);
            samples.extend((1..=16).map(|k| {
                let t = k as f64 / 16.0;
                (x0 + t * (x1 - x0), y0 + t * (y1 - y0))
            }));
        }
    }
    let covered = |[x0, x1, y0, y1]: [f64; 4]| {
        samples.iter().filter(|&&(a, b)| (x0..=x1).contains(&a) && (y0..=y1).contains(&b)).count()
    };
    LegendPosition::PLACES
        .iter()
        .min_by_key(|(_, area)| covered(*area))
        .map_or(LegendPosition::UpperRight, |(place, _)| *place)
}

/// One axis: the range of its values, padded by `margin` (a fraction of the span, or of the
/// number of decades on a log axis).
fn padded_range(lo: f64, hi: f64, log: bool, margin: f64) -> std::ops::Range<f64> {
    if log {
        if hi / lo <= 1.0 + 1e-12 {
            return lo / 2.0..hi * 2.0;
        }
        let factor = (hi / lo).powf(margin);
        lo / factor..hi * factor
    } else {
        let span = hi - lo;
        if span <= f64::EPSILON * lo.abs().max(hi.abs()) {
            let pad = if lo == 0.0 { 1.0 } else { lo.abs() * 0.1 };
            return lo - pad..hi + pad;
        }
        lo - span * margin..hi + span * margin
    }
}

/// The smallest and largest of some values, or `None` when there are none.
fn min_max(values: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    values.fold(None, |acc, v| match acc {
        None => Some((v, v)),
        Some((lo, hi)) => Some((lo.min(v), hi.max(v))),
    })
}

/// Render a chart as an SVG document.
fn render_svg(size: (u32, u32), draw: impl FnOnce(&DrawingArea<SVGBackend, Shift>) -> Result<()>) -> Result<String> {
    check_size(size)?;
    register_font()?;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
        draw(&root)?;
        root.present().map_err(plot_error)?;
    }
    Ok(svg)
}

/// Render a chart as PNG bytes.
fn render_png(size: (u32, u32), draw: impl FnOnce(&DrawingArea<BitMapBackend, Shift>) -> Result<()>) -> Result<Vec<u8>> {
    check_size(size)?;
    register_font()?;
    let (w, h) = size;
    let mut pixels = vec![0u8; w as usize * h as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut pixels, size).into_drawing_area();
        draw(&root)?;
        root.present().map_err(plot_error)?;
    }
    let image = image::RgbImage::from_raw(w, h, pixels)
        .ok_or_else(|| Error::Plot("the pixel buffer does not match the chart size".into()))?;
    let mut png = std::io::Cursor::new(Vec::new());
    image
        .write_to(&mut png, image::ImageOutputFormat::Png)
        .map_err(|e| Error::Plot(format!("PNG encoding failed: {e}")))?;
    Ok(png.into_inner())
}

/// A chart must have room to draw in.
fn check_size((w, h): (u32, u32)) -> Result<()> {
    if w < 100 || h < 100 {
        return Err(Error::Plot(format!("chart size {w}x{h} is too small (at least 100x100 pixels)")));
    }
    Ok(())
}

/// Save a chart to `path` as SVG or PNG, chosen by the extension.
fn save_chart(
    path: &Path,
    svg: impl FnOnce() -> Result<String>,
    png: impl FnOnce() -> Result<Vec<u8>>,
) -> Result<()> {
    let ext = path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
    let bytes = match ext.as_deref() {
        Some("svg") => svg()?.into_bytes(),
        Some("png") => png()?,
        _ => {
            return Err(Error::Plot(format!(
                "cannot save {}: the file name must end in .svg or .png",
                path.display()
            )))
        }
    };
    crate::io::write_bytes_atomically(path, &bytes)
}

/// Print an SVG in the form evcxr shows inline (or the error, on stderr).
fn display_in_evcxr(svg: Result<String>) {
    match svg {
        Ok(svg) => println!("EVCXR_BEGIN_CONTENT image/svg+xml\n{svg}\nEVCXR_END_CONTENT"),
        Err(e) => eprintln!("{e}"),
    }
}

/// One named curve of a [`LineChart`].
#[derive(Debug, Clone, PartialEq)]
struct Series {
    name: String,
    points: Vec<(f64, f64)>,
}

/// A horizontal dashed reference line of a [`LineChart`] (e.g. a target error).
#[derive(Debug, Clone, PartialEq)]
struct ReferenceLine {
    name: String,
    y: f64,
}

/// A line chart: named series of (x, y) points, optional dashed reference lines, a legend.
#[derive(Debug, Clone, PartialEq)]
pub struct LineChart {
    title: String,
    x_label: String,
    y_label: String,
    log_x: bool,
    log_y: bool,
    series: Vec<Series>,
    reference_lines: Vec<ReferenceLine>,
    size: (u32, u32),
    legend: LegendPosition,
}

impl LineChart {
    /// An empty chart with this title.
    pub fn new(title: impl Into<String>) -> Self {
        LineChart {
            title: title.into(),
            x_label: String::new(),
            y_label: String::new(),
            log_x: false,
            log_y: false,
            series: vec![],
            reference_lines: vec![],
            size: DEFAULT_SIZE,
            legend: LegendPosition::default(),
        }
    }

    /// Name the x axis.
    pub fn x_label(mut self, label: impl Into<String>) -> Self {
        self.x_label = label.into();
        self
    }

    /// Name the y axis.
    pub fn y_label(mut self, label: impl Into<String>) -> Self {
        self.y_label = label.into();
        self
    }

    /// Use a logarithmic x axis (every x must then be positive).
    pub fn log_x(mut self) -> Self {
        self.log_x = true;
        self
    }

    /// Use a logarithmic y axis (every y, reference lines included, must then be positive).
    pub fn log_y(mut self) -> Self {
        self.log_y = true;
        self
    }

    /// Add a curve; points with a non-finite coordinate are skipped when drawing.
    pub fn series(mut self, name: impl Into<String>, points: Vec<(f64, f64)>) -> Self {
        self.series.push(Series { name: name.into(), points });
        self
    }

    /// Add a horizontal dashed reference line at height `y` across the whole chart.
    pub fn hline(mut self, name: impl Into<String>, y: f64) -> Self {
        self.reference_lines.push(ReferenceLine { name: name.into(), y });
        self
    }

    /// Set the size in pixels (default [`DEFAULT_SIZE`]).
    pub fn size(mut self, width: u32, height: u32) -> Self {
        self.size = (width, height);
        self
    }

    /// Place the legend (default: [`LegendPosition::Auto`], where it covers the fewest lines).
    pub fn legend(mut self, position: LegendPosition) -> Self {
        self.legend = position;
        self
    }

    /// The chart as an SVG document.
    pub fn to_svg(&self) -> Result<String> {
        let ranges = self.ranges()?;
        render_svg(self.size, |root| self.draw(root, ranges))
    }

    /// The chart as PNG bytes.
    pub fn to_png(&self) -> Result<Vec<u8>> {
        let ranges = self.ranges()?;
        render_png(self.size, |root| self.draw(root, ranges))
    }

    /// Write the chart to `path` (`.svg` or `.png`), atomically.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        save_chart(path.as_ref(), || self.to_svg(), || self.to_png())
    }

    /// Show the chart inline in evcxr (called by the kernel when a cell ends with a chart).
    pub fn evcxr_display(&self) {
        display_in_evcxr(self.to_svg());
    }

    /// The x and y ranges to draw, from the finite data, padded; checks log axes.
    fn ranges(&self) -> Result<(std::ops::Range<f64>, std::ops::Range<f64>)> {
        if self.series.is_empty() {
            return Err(Error::Plot(format!("line chart \"{}\" has no series to draw", self.title)));
        }
        for s in &self.series {
            for &(x, y) in s.points.iter().filter(|(x, y)| x.is_finite() && y.is_finite()) {
                if self.log_x && x <= 0.0 {
                    return Err(Error::Plot(format!(
                        "line chart \"{}\": the x axis is logarithmic but series \"{}\" has x = {x}",
                        self.title, s.name
                    )));
                }
                if self.log_y && y <= 0.0 {
                    return Err(Error::Plot(format!(
                        "line chart \"{}\": the y axis is logarithmic but series \"{}\" has y = {y}",
                        self.title, s.name
                    )));
                }
            }
        }
        for r in &self.reference_lines {
            if !r.y.is_finite() || (self.log_y && r.y <= 0.0) {
                return Err(Error::Plot(format!(
                    "line chart \"{}\": reference line \"{}\" at y = {} cannot be drawn{}",
                    self.title,
                    r.name,
                    r.y,
                    if self.log_y { " on a logarithmic axis" } else { "" }
                )));
            }
        }
        let finite = || {
            self.series.iter().flat_map(|s| s.points.iter()).filter(|(x, y)| x.is_finite() && y.is_finite())
        };
        let (x_lo, x_hi) = min_max(finite().map(|p| p.0)).ok_or_else(|| {
            Error::Plot(format!("line chart \"{}\" has no finite points to draw", self.title))
        })?;
        let (y_lo, y_hi) = min_max(finite().map(|p| p.1).chain(self.reference_lines.iter().map(|r| r.y)))
            .ok_or_else(|| Error::Plot(format!("line chart \"{}\" has no finite points to draw", self.title)))?;
        Ok((padded_range(x_lo, x_hi, self.log_x, 0.02), padded_range(y_lo, y_hi, self.log_y, 0.05)))
    }

    /// Draw on any backend, picking linear or logarithmic axes.
    fn draw<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
        (x, y): (std::ops::Range<f64>, std::ops::Range<f64>),
    ) -> Result<()> {
        let spans = (x.clone(), y.clone());
        match (self.log_x, self.log_y) {
            (false, false) => self.draw_with(root, x, y, spans),
            (true, false) => self.draw_with(root, x.log_scale(), y, spans),
            (false, true) => self.draw_with(root, x, y.log_scale(), spans),
            (true, true) => self.draw_with(root, x.log_scale(), y.log_scale(), spans),
        }
    }

    /// Draw with the given axis specifications; `spans` are the axes' ranges (reference lines run
    /// across `x_span`; the automatic legend place is worked out in them).
    fn draw_with<DB, X, Y>(
        &self,
        root: &DrawingArea<DB, Shift>,
        x: X,
        y: Y,
        (x_span, y_span): (std::ops::Range<f64>, std::ops::Range<f64>),
    ) -> Result<()>
    where
        DB: DrawingBackend,
        X: AsRangedCoord<Value = f64>,
        Y: AsRangedCoord<Value = f64>,
        X::CoordDescType: ValueFormatter<f64>,
        Y::CoordDescType: ValueFormatter<f64>,
    {
        root.fill(&WHITE).map_err(plot_error)?;
        let mut chart = ChartBuilder::on(root)
            .caption(&self.title, (FONT_FAMILY, 22))
            .margin(12)
            .x_label_area_size(48)
            .y_label_area_size(78)
            .build_cartesian_2d(x, y)
            .map_err(plot_error)?;
        chart
            .configure_mesh()
            .light_line_style(BLACK.mix(0.05))
            .x_desc(self.x_label.as_str())
            .y_desc(self.y_label.as_str())
            .axis_desc_style((FONT_FAMILY, 16))
            .label_style((FONT_FAMILY, 13))
            .x_label_formatter(&|v| tick_label(*v))
            .y_label_formatter(&|v| tick_label(*v))
            .draw()
            .map_err(plot_error)?;

        for (i, s) in self.series.iter().enumerate() {
            let c = colour(i);
            let points: Vec<(f64, f64)> =
                s.points.iter().copied().filter(|(x, y)| x.is_finite() && y.is_finite()).collect();
            let dot_size = if points.len() <= MARK_POINTS_UP_TO { 3 } else { 0 };
            chart
                .draw_series(LineSeries::new(points, c.stroke_width(2)).point_size(dot_size))
                .map_err(plot_error)?
                .label(s.name.as_str())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], c.stroke_width(2)));
        }
        for (j, r) in self.reference_lines.iter().enumerate() {
            let c = colour(self.series.len() + j);
            let style = c.stroke_width(2);
            chart
                .draw_series(DashedLineSeries::new(vec![(x_span.start, r.y), (x_span.end, r.y)], 10, 6, style))
                .map_err(plot_error)?
                .label(r.name.as_str())
                .legend(move |(x, y)| {
                    EmptyElement::at((x, y))
                        + PathElement::new(vec![(0, 0), (9, 0)], style)
                        + PathElement::new(vec![(15, 0), (24, 0)], style)
                });
        }
        let legend = match self.legend {
            LegendPosition::Auto => {
                let mut lines: Vec<Vec<(f64, f64)>> = self.series.iter().map(|s| s.points.clone()).collect();
                lines.extend(self.reference_lines.iter().map(|r| vec![(x_span.start, r.y), (x_span.end, r.y)]));
                least_covered_position(&lines, (&x_span, &y_span), (self.log_x, self.log_y))
            }
            fixed => fixed,
        };
        chart
            .configure_series_labels()
            .position(legend.to_plotters())
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.4))
            .label_font((FONT_FAMILY, 14))
            .draw()
            .map_err(plot_error)?;
        Ok(())
    }
}

/// A bar chart: one bar per named category (e.g. test error per model).
#[derive(Debug, Clone, PartialEq)]
pub struct BarChart {
    title: String,
    x_label: String,
    y_label: String,
    log_y: bool,
    bars: Vec<(String, f64)>,
    size: (u32, u32),
}

impl BarChart {
    /// An empty bar chart with this title.
    pub fn new(title: impl Into<String>) -> Self {
        BarChart {
            title: title.into(),
            x_label: String::new(),
            y_label: String::new(),
            log_y: false,
            bars: vec![],
            size: DEFAULT_SIZE,
        }
    }

    /// Name the x axis (the categories).
    pub fn x_label(mut self, label: impl Into<String>) -> Self {
        self.x_label = label.into();
        self
    }

    /// Name the y axis (the values).
    pub fn y_label(mut self, label: impl Into<String>) -> Self {
        self.y_label = label.into();
        self
    }

    /// Use a logarithmic y axis (every value must then be positive).
    pub fn log_y(mut self) -> Self {
        self.log_y = true;
        self
    }

    /// Add bars, one per (category, value), drawn left to right in this order.
    pub fn bars(mut self, bars: Vec<(String, f64)>) -> Self {
        self.bars.extend(bars);
        self
    }

    /// Set the size in pixels (default [`DEFAULT_SIZE`]).
    pub fn size(mut self, width: u32, height: u32) -> Self {
        self.size = (width, height);
        self
    }

    /// The chart as an SVG document.
    pub fn to_svg(&self) -> Result<String> {
        let y = self.y_range()?;
        render_svg(self.size, |root| self.draw(root, y))
    }

    /// The chart as PNG bytes.
    pub fn to_png(&self) -> Result<Vec<u8>> {
        let y = self.y_range()?;
        render_png(self.size, |root| self.draw(root, y))
    }

    /// Write the chart to `path` (`.svg` or `.png`), atomically.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        save_chart(path.as_ref(), || self.to_svg(), || self.to_png())
    }

    /// Show the chart inline in evcxr (called by the kernel when a cell ends with a chart).
    pub fn evcxr_display(&self) {
        display_in_evcxr(self.to_svg());
    }

    /// The y range: from zero (linear) or below the smallest bar (log) to above the largest.
    fn y_range(&self) -> Result<std::ops::Range<f64>> {
        if self.bars.is_empty() {
            return Err(Error::Plot(format!("bar chart \"{}\" has no bars to draw", self.title)));
        }
        for (name, v) in &self.bars {
            if !v.is_finite() || (self.log_y && *v <= 0.0) {
                return Err(Error::Plot(format!(
                    "bar chart \"{}\": bar \"{name}\" has value {v}, which cannot be drawn{}",
                    self.title,
                    if self.log_y { " on a logarithmic axis" } else { "" }
                )));
            }
        }
        let (lo, hi) = min_max(self.bars.iter().map(|b| b.1)).unwrap_or((0.0, 1.0));
        if self.log_y {
            Ok(padded_range(lo, hi, true, 0.08))
        } else {
            // Bars grow from zero, so zero is always on the axis.
            let padded = padded_range(lo.min(0.0), hi.max(0.0), false, 0.05);
            let start = if lo >= 0.0 { 0.0 } else { padded.start };
            let end = if hi <= 0.0 { 0.0 } else { padded.end };
            Ok(start..end)
        }
    }

    /// Draw on any backend, picking a linear or logarithmic y axis.
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>, y: std::ops::Range<f64>) -> Result<()> {
        let baseline = if self.log_y { y.start } else { 0.0 };
        if self.log_y {
            self.draw_with(root, y.log_scale(), baseline)
        } else {
            self.draw_with(root, y, baseline)
        }
    }

    /// Draw with the given y axis specification; bars start at `baseline`.
    fn draw_with<DB, Y>(&self, root: &DrawingArea<DB, Shift>, y: Y, baseline: f64) -> Result<()>
    where
        DB: DrawingBackend,
        Y: AsRangedCoord<Value = f64>,
        Y::CoordDescType: ValueFormatter<f64>,
    {
        let n = self.bars.len();
        let longest = self.bars.iter().map(|b| b.0.chars().count()).max().unwrap_or(0);
        // Turn the category names upright when they would not fit side by side (~7 px a character).
        let plot_width = self.size.0.saturating_sub(110) as usize;
        let upright = n > 1 && (longest * 7 + 10) * n > plot_width;
        let x_area = if upright { 44 + longest as u32 * 6 } else { 48 };

        root.fill(&WHITE).map_err(plot_error)?;
        // Integer ranges are inclusive: 0..n-1 makes n segments, one per bar.
        let mut chart = ChartBuilder::on(root)
            .caption(&self.title, (FONT_FAMILY, 22))
            .margin(12)
            .x_label_area_size(x_area)
            .y_label_area_size(78)
            .build_cartesian_2d((0..n - 1).into_segmented(), y)
            .map_err(plot_error)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .light_line_style(BLACK.mix(0.05))
            .x_desc(self.x_label.as_str())
            .y_desc(self.y_label.as_str())
            .axis_desc_style((FONT_FAMILY, 16))
            .label_style((FONT_FAMILY, 13))
            .set_tick_mark_size(LabelAreaPosition::Bottom, 0)
            .x_labels(n + 1)
            .x_label_formatter(&|_| String::new()) // the names are drawn below
            .y_label_formatter(&|v| tick_label(*v))
            .draw()
            .map_err(plot_error)?;
        // Category names are drawn here, centred under their bars: plotters misplaces the tick
        // label of a single segment and centres rotated labels on the tick (half inside the plot).
        let style = if upright {
            TextStyle::from((FONT_FAMILY, 13).into_font().transform(FontTransform::Rotate270))
                .pos(Pos::new(HPos::Right, VPos::Center))
        } else {
            TextStyle::from((FONT_FAMILY, 13).into_font()).pos(Pos::new(HPos::Center, VPos::Top))
        };
        let (xs, ys) = chart.plotting_area().get_pixel_range();
        let width = (xs.end - xs.start) as i64;
        for (i, (name, _)) in self.bars.iter().enumerate() {
            // The n segments split the plot's width evenly; bar i sits in the middle of the i-th.
            let centre = xs.start + ((2 * i as i64 + 1) * width / (2 * n as i64)) as i32;
            root.draw_text(name, &style, (centre, ys.end + 8)).map_err(plot_error)?;
        }
        let bar_margin = (plot_width / n / 5).max(1) as u32;
        chart
            .draw_series(
                Histogram::vertical(&chart)
                    .style(colour(0).filled())
                    .margin(bar_margin)
                    .baseline(baseline)
                    .data(self.bars.iter().enumerate().map(|(i, b)| (i, b.1))),
            )
            .map_err(plot_error)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn three_series() -> LineChart {
        LineChart::new("Learning-rate finder")
            .x_label("learning rate")
            .y_label("training loss")
            .log_x()
            .series("SGD", vec![(1e-5, 2.3), (1e-4, 2.1), (1e-3, 1.5), (1e-2, 0.9), (1e-1, 3.0)])
            .series("Adam", vec![(1e-5, 2.2), (1e-4, 1.6), (1e-3, 1.1), (1e-2, f64::NAN), (1e-1, 9.0)])
            .series("AdaGrad", vec![(1e-5, 2.3), (1e-4, 2.2), (1e-3, 1.9), (1e-2, 1.4), (1e-1, 1.2)])
            .hline("6% target", 0.6)
    }

    /// The trimmed contents of every `<text>` element of an SVG document.
    fn svg_texts(svg: &str) -> Vec<String> {
        svg.split("<text").skip(1).filter_map(|t| {
            let body = &t[t.find('>')? + 1..];
            Some(body[..body.find("</text>")?].trim().to_string())
        }).collect()
    }

    #[test]
    fn automatic_legend_goes_where_the_lines_are_not() {
        let unit = (&(0.0..1.0), &(0.0..1.0));
        // A falling curve leaves the top right empty: the first choice.
        let falling = vec![vec![(0.0, 0.95), (0.5, 0.3), (1.0, 0.05)]];
        assert_eq!(least_covered_position(&falling, unit, (false, false)), LegendPosition::UpperRight);
        // A rising one (accuracy) fills the top right and leaves the top left empty.
        let rising = vec![vec![(0.0, 0.05), (0.5, 0.3), (1.0, 0.95)]];
        assert_eq!(least_covered_position(&rising, unit, (false, false)), LegendPosition::UpperLeft);
        // Flat curves along the top and a reference line along the bottom: half way up.
        let flat = vec![vec![(0.0, 0.9), (1.0, 0.92)], vec![(0.0, 0.88), (1.0, 0.85)], vec![(0.0, 0.05), (1.0, 0.05)]];
        assert_eq!(least_covered_position(&flat, unit, (false, false)), LegendPosition::MiddleRight);
        // Log axes are measured in decades: 1e-5 … 1e-1 falls, so the top right stays free.
        let decades = vec![vec![(1e-5, 2.0), (1e-3, 1.0), (1e-1, 0.1)]];
        let ranges = (&(1e-5..1e-1), &(0.1..2.0));
        assert_eq!(least_covered_position(&decades, ranges, (true, false)), LegendPosition::UpperRight);
    }

    #[test]
    fn svg_names_title_axes_and_every_series() {
        let svg = three_series().to_svg().expect("chart draws");
        assert!(svg.starts_with("<svg"), "an SVG document: {}", &svg[..40.min(svg.len())]);
        for text in ["Learning-rate finder", "learning rate", "training loss", "SGD", "Adam", "AdaGrad", "6% target"] {
            assert!(svg_texts(&svg).iter().any(|t| t == text), "SVG lacks a <text> element reading {text:?}");
        }
    }

    #[test]
    fn text_is_escaped_in_svg() {
        let svg = LineChart::new("a < b & c").series("x", vec![(0.0, 1.0), (1.0, 2.0)]).to_svg().expect("draws");
        assert!(svg.contains("a &lt; b &amp; c"));
    }

    #[test]
    fn tick_labels_are_short() {
        assert_eq!(tick_label(0.0), "0");
        assert_eq!(tick_label(0.1), "0.1");
        assert_eq!(tick_label(2.5), "2.5");
        assert_eq!(tick_label(1000.0), "1000");
        assert_eq!(tick_label(1e-4), "1e-4");
        assert_eq!(tick_label(2.5e-5), "2.5e-5");
        assert_eq!(tick_label(1e6), "1e6");
        assert_eq!(tick_label(-0.25), "-0.25");
    }

    #[test]
    fn ranges_come_from_finite_data_with_a_margin() {
        let chart = LineChart::new("t")
            .series("a", vec![(0.0, 10.0), (10.0, 30.0), (f64::INFINITY, 1e9)])
            .hline("ref", 5.0);
        let (x, y) = chart.ranges().expect("ranges");
        // x spans 0..10 padded by 2% of 10 = 0.2 each side; y spans 5..30 padded by 5% of 25.
        assert!((x.start + 0.2).abs() < 1e-12 && (x.end - 10.2).abs() < 1e-12, "{x:?}");
        assert!((y.start - 3.75).abs() < 1e-12 && (y.end - 31.25).abs() < 1e-12, "{y:?}");

        // Log x over 1e-4..1e0 (4 decades): 2% of 4 decades = 0.08 decades each side.
        let chart = LineChart::new("t").log_x().series("a", vec![(1e-4, 1.0), (1.0, 2.0)]);
        let (x, _) = chart.ranges().expect("ranges");
        assert!((x.start.log10() + 4.08).abs() < 1e-9 && (x.end.log10() - 0.08).abs() < 1e-9, "{x:?}");
    }

    #[test]
    fn log_axis_with_non_positive_values_is_an_error() {
        let err = LineChart::new("t").log_x().series("bad", vec![(0.0, 1.0), (1.0, 2.0)]).to_svg().unwrap_err();
        assert!(matches!(&err, Error::Plot(m) if m.contains("bad") && m.contains("x = 0")), "{err}");
        let err = LineChart::new("t").log_y().series("neg", vec![(1.0, -1.0)]).to_svg().unwrap_err();
        assert!(matches!(&err, Error::Plot(m) if m.contains("neg") && m.contains("y = -1")), "{err}");
        let err = BarChart::new("t").log_y().bars(vec![("zero".into(), 0.0)]).to_svg().unwrap_err();
        assert!(matches!(&err, Error::Plot(m) if m.contains("zero")), "{err}");
    }

    #[test]
    fn empty_charts_are_clear_errors() {
        let err = LineChart::new("nothing").to_svg().unwrap_err();
        assert!(matches!(&err, Error::Plot(m) if m.contains("no series")), "{err}");
        let err = LineChart::new("nans").series("a", vec![(f64::NAN, 1.0)]).to_svg().unwrap_err();
        assert!(matches!(&err, Error::Plot(m) if m.contains("no finite points")), "{err}");
        let err = BarChart::new("none").to_svg().unwrap_err();
        assert!(matches!(&err, Error::Plot(m) if m.contains("no bars")), "{err}");
    }

    #[test]
    fn bar_chart_names_every_category() {
        let bars: Vec<(String, f64)> =
            ["VGG-16", "ResNet-20", "MiniGoogLeNet"].iter().zip([7.5, 8.25, 6.5]).map(|(n, v)| (n.to_string(), v)).collect();
        let svg = BarChart::new("Test error").x_label("model").y_label("error (%)").bars(bars).to_svg().expect("draws");
        for text in ["Test error", "model", "error (%)", "VGG-16", "ResNet-20", "MiniGoogLeNet"] {
            assert!(svg_texts(&svg).iter().any(|t| t == text), "SVG lacks a <text> element reading {text:?}");
        }
        // Linear bars start at zero: the y range is 0 .. 8.25 + 5% of 8.25.
        let y = BarChart::new("t").bars(vec![("a".into(), 2.0), ("b".into(), 4.0)]).y_range().expect("range");
        assert_eq!(y.start, 0.0);
        assert!((y.end - 4.2).abs() < 1e-12, "{y:?}");
    }

    #[test]
    fn many_bars_get_upright_names_and_one_bar_draws() {
        let bars: Vec<(String, f64)> = (0..12).map(|i| (format!("model number {i}"), 1.0 + i as f64)).collect();
        let svg = BarChart::new("many").bars(bars).to_svg().expect("draws");
        let texts = svg_texts(&svg);
        for i in 0..12 {
            assert!(texts.contains(&format!("model number {i}")), "name {i} missing");
        }
        assert!(svg.contains("rotate("), "names are turned upright");
        let svg = BarChart::new("one").bars(vec![("only".into(), 3.0)]).to_svg().expect("draws");
        assert!(svg_texts(&svg).iter().any(|t| t == "only"));
    }

    #[test]
    fn save_writes_svg_and_png_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let chart = three_series();
        chart.save(dir.path().join("finder.svg")).expect("svg saved");
        chart.save(dir.path().join("finder.png")).expect("png saved");
        let svg = std::fs::read_to_string(dir.path().join("finder.svg")).expect("read svg");
        assert!(svg.contains("AdaGrad"));
        let png = std::fs::read(dir.path().join("finder.png")).expect("read png");
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "PNG signature");
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .expect("list")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["finder.png", "finder.svg"]);

        let err = chart.save(dir.path().join("finder.pdf")).unwrap_err();
        assert!(matches!(&err, Error::Plot(m) if m.contains(".svg or .png")), "{err}");
    }

    #[test]
    fn png_has_the_requested_size_and_is_not_blank() {
        let png = three_series().size(640, 400).to_png().expect("png");
        let image = image::load_from_memory(&png).expect("decodes").to_rgb8();
        assert_eq!(image.dimensions(), (640, 400));
        // Every series colour appears somewhere in the picture.
        for c in &PALETTE[..4] {
            assert!(image.pixels().any(|p| p.0 == [c.0, c.1, c.2]), "colour {c:?} missing");
        }
    }
}
