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
//!     .hline("6% target", 6.0)
//!     .vline("best checkpoint", 3.0);
//! chart.save("error.png")?;
//! # Ok::<(), dlkit::Error>(())
//! ```
//!
//! Both kinds of chart hold a `Frame` (title, axis labels, log axes, size, legend place,
//! horizontal reference lines); its setters and the outputs (SVG, PNG, file, evcxr) are written
//! once here and given to each chart by a macro. `line` and `bar` draw the data; `legend`
//! chooses where the legend goes and words its entries.
//!
//! Text is measured (and, in PNG files, drawn) with a small copy of DejaVu Sans compiled into
//! the library (`assets/DejaVuSans-subset.ttf`), so charts look the same on a laptop with no
//! system fonts. SVG output keeps titles and labels as real `<text>` elements.
//!
//! Rules for the data: a point or bar with a non-finite coordinate (NaN, ±∞, e.g. a diverged
//! loss) is not drawn, and the chart says so where it is named: the legend entry reads
//! `"lr 1e1 (3 points not finite, not drawn)"`, a series with no finite point at all
//! `"lr 1e1 (no finite point: diverged)"`, a bar's category `"name (not finite)"`. Drawing fails
//! only when nothing at all is finite. On a logarithmic axis every finite value must be
//! positive, otherwise drawing fails with [`Error::Plot`] naming the series (points are never
//! dropped silently for that).

use std::ops::Range;
use std::path::Path;
use std::sync::OnceLock;

use plotters::chart::MeshStyle;
use plotters::coord::combinators::{BindKeyPoints, LogCoord, WithKeyPoints};
use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
use plotters::coord::Shift;
use plotters::element::DashedPathElement;
use plotters::prelude::*;

use crate::{Error, Result};

/// The builder setters and outputs every chart shares, written once: each setter changes the
/// chart's `frame`, each output goes through the renderer for any `Chart`.
macro_rules! frame_methods {
    () => {
        /// Name the x axis.
        pub fn x_label(mut self, label: impl Into<String>) -> Self {
            self.frame.x_label = label.into();
            self
        }

        /// Name the y axis.
        pub fn y_label(mut self, label: impl Into<String>) -> Self {
            self.frame.y_label = label.into();
            self
        }

        /// Use a logarithmic y axis (every value against it, reference lines included, must then
        /// be positive).
        pub fn log_y(mut self) -> Self {
            self.frame.log_y = true;
            self
        }

        /// Add a horizontal dashed reference line at height `y` across the whole chart, named in
        /// the legend (e.g. a target error).
        pub fn hline(mut self, name: impl Into<String>, y: f64) -> Self {
            self.frame.hlines.push(crate::plot::ReferenceLine { name: name.into(), at: y });
            self
        }

        /// Set the size in pixels (default [`DEFAULT_SIZE`](crate::plot::DEFAULT_SIZE)).
        pub fn size(mut self, width: u32, height: u32) -> Self {
            self.frame.size = (width, height);
            self
        }

        /// Place the legend (default: [`LegendPosition::Auto`](crate::plot::LegendPosition::Auto),
        /// where it covers the least of the drawing).
        pub fn legend(mut self, position: crate::plot::LegendPosition) -> Self {
            self.frame.legend = position;
            self
        }

        /// The chart as an SVG document.
        pub fn to_svg(&self) -> crate::Result<String> {
            crate::plot::render_svg(self)
        }

        /// The chart as PNG bytes.
        pub fn to_png(&self) -> crate::Result<Vec<u8>> {
            crate::plot::render_png(self)
        }

        /// Write the chart to `path` (`.svg` or `.png`), atomically.
        pub fn save(&self, path: impl AsRef<std::path::Path>) -> crate::Result<()> {
            crate::plot::save_chart(self, path.as_ref())
        }

        /// Show the chart inline in evcxr (called by the kernel when a cell ends with a chart).
        pub fn evcxr_display(&self) {
            crate::plot::display_in_evcxr(self)
        }
    };
}

mod bar;
mod legend;
mod line;

pub use bar::BarChart;
pub use legend::{least_covered_position, LegendPosition};
pub use line::LineChart;

/// The font compiled into the library (ASCII, Latin-1, Greek and a few maths signs).
static FONT_BYTES: &[u8] = include_bytes!("../../assets/DejaVuSans-subset.ttf");

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

/// Dashes of reference lines: this many pixels drawn, then `DASH_GAP` left blank.
const DASH: i32 = 10;

/// The blank between two dashes of a reference line, in pixels.
const DASH_GAP: i32 = 6;

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

/// The colour of the `i`-th drawn thing (the palette repeats after ten).
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

/// [`tick_label`] in the form plotters' axis formatters take.
fn tick_label_of(v: &f64) -> String {
    tick_label(*v)
}

/// An x tick's label; with `whole_only` (an axis of epochs or steps) a tick between two whole
/// numbers (epoch 1.5) gets none.
fn x_tick_label(v: f64, whole_only: bool) -> String {
    if whole_only && v.fract() != 0.0 {
        String::new()
    } else {
        tick_label(v)
    }
}

/// One axis: the range of its values, padded by `margin` (a fraction of the span, or of the
/// number of decades on a log axis).
fn padded_range(lo: f64, hi: f64, log: bool, margin: f64) -> Range<f64> {
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

/// A "nice" step near `raw`: 1, 2 or 5 times a power of ten.
fn nice_step(raw: f64) -> f64 {
    let power = 10f64.powf(raw.log10().floor());
    let m = match raw / power {
        f if f < 1.5 => 1.0,
        f if f < 3.0 => 2.0,
        f if f < 7.0 => 5.0,
        _ => 10.0,
    };
    m * power
}

/// Where a logarithmic axis over `lo..hi` has labelled ticks (bold grid lines) and unlabelled
/// light grid lines. Over two or more powers of ten: the powers (every few when there are more
/// than eight) with lines at 2…9 times each power between. Within a decade, where plotters alone
/// would draw no tick at all: about five evenly stepped values (steps of 1, 2 or 5 × 10^k).
fn log_ticks(lo: f64, hi: f64) -> (Vec<f64>, Vec<f64>) {
    let (first, last) = (lo.log10().ceil() as i32, hi.log10().floor() as i32);
    let within = |v: &f64| (lo..=hi).contains(v);
    if last > first {
        let every = ((last - first + 1) as f64 / 8.0).ceil() as usize;
        let bold: Vec<f64> = (first..=last).step_by(every).map(|k| 10f64.powi(k)).collect();
        let light = if every == 1 {
            (first - 1..=last).flat_map(|k| (2..=9).map(move |m| m as f64 * 10f64.powi(k))).filter(within).collect()
        } else {
            vec![]
        };
        return (bold, light);
    }
    let step = nice_step((hi - lo) / 5.0);
    let bold = ((lo / step).ceil() as i64..=(hi / step).floor() as i64).map(|i| i as f64 * step).filter(within).collect();
    (bold, vec![])
}

/// A logarithmic axis over `range` with the ticks of [`log_ticks`].
fn log_axis(range: &Range<f64>) -> WithKeyPoints<LogCoord<f64>> {
    let (bold, light) = log_ticks(range.start, range.end);
    range.clone().log_scale().with_key_points(bold).with_light_points(light)
}

/// The smallest and largest of some values, or `None` when there are none.
fn min_max(values: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    values.fold(None, |acc, v| match acc {
        None => Some((v, v)),
        Some((lo, hi)) => Some((lo.min(v), hi.max(v))),
    })
}

/// A point both of whose coordinates are finite (the only kind that is drawn).
fn is_finite_point(&(x, y): &(f64, f64)) -> bool {
    x.is_finite() && y.is_finite()
}

/// A dashed reference line across the whole chart: horizontal at `at` on the y axis (or, for
/// a line chart's vertical lines, at `at` on the x axis).
#[derive(Debug, Clone, PartialEq)]
struct ReferenceLine {
    name: String,
    at: f64,
}

/// The chart area plotters builds on a drawing area for the axes `X` × `Y`.
type ChartOn<'a, DB, X, Y> =
    ChartContext<'a, DB, Cartesian2d<<X as AsRangedCoord>::CoordDescType, <Y as AsRangedCoord>::CoordDescType>>;

/// What every chart has around its data: title, axis labels, axis scales, size, legend place,
/// horizontal reference lines.
#[derive(Debug, Clone, PartialEq)]
struct Frame {
    /// What errors call the chart ("line chart", "bar chart").
    kind: &'static str,
    title: String,
    x_label: String,
    y_label: String,
    log_x: bool,
    log_y: bool,
    size: (u32, u32),
    legend: LegendPosition,
    hlines: Vec<ReferenceLine>,
}

impl Frame {
    /// An empty frame of a chart of this kind, with this title, at the default size.
    fn new(kind: &'static str, title: String) -> Self {
        Frame {
            kind,
            title,
            x_label: String::new(),
            y_label: String::new(),
            log_x: false,
            log_y: false,
            size: DEFAULT_SIZE,
            legend: LegendPosition::default(),
            hlines: vec![],
        }
    }

    /// An error about this chart: `line chart "title": <what>`.
    fn error(&self, what: impl std::fmt::Display) -> Error {
        Error::Plot(format!("{} \"{}\": {what}", self.kind, self.title))
    }

    /// A value `v` of the thing `what` must be drawable on the `axis` ("x" or "y"), which is
    /// logarithmic if `log`: finite and, on a log axis, positive.
    fn check_reference(&self, what: &str, axis: &str, v: f64, log: bool) -> Result<()> {
        if !v.is_finite() || (log && v <= 0.0) {
            return Err(self.error(format!(
                "{what} at {axis} = {v} cannot be drawn{}",
                if log { " on a logarithmic axis" } else { "" }
            )));
        }
        Ok(())
    }

    /// Every horizontal reference line must be drawable on the y axis.
    fn check_hlines(&self) -> Result<()> {
        for r in &self.hlines {
            self.check_reference(&format!("reference line \"{}\"", r.name), "y", r.at, self.log_y)?;
        }
        Ok(())
    }

    /// Clear `root` and set up the chart area in it: caption, margins, room for the tick
    /// labels (`x_label_area` pixels below, enough for numbers on the left), the given axes.
    fn chart_on<'a, DB, X, Y>(
        &self,
        root: &'a DrawingArea<DB, Shift>,
        x: X,
        y: Y,
        x_label_area: u32,
    ) -> Result<ChartOn<'a, DB, X, Y>>
    where
        DB: DrawingBackend,
        X: AsRangedCoord,
        Y: AsRangedCoord,
    {
        root.fill(&WHITE).map_err(plot_error)?;
        ChartBuilder::on(root)
            .caption(&self.title, (FONT_FAMILY, 22))
            .margin(12)
            .x_label_area_size(x_label_area)
            .y_label_area_size(78)
            .build_cartesian_2d(x, y)
            .map_err(plot_error)
    }

    /// The grid and axes in the house style (light grid, axis names, short numeric y ticks),
    /// ready for a chart kind's own settings and then `.draw()`.
    fn mesh<'a, 'b, DB, X, Y>(&self, chart: &'b mut ChartContext<'a, DB, Cartesian2d<X, Y>>) -> MeshStyle<'a, 'b, X, Y, DB>
    where
        DB: DrawingBackend,
        X: Ranged + ValueFormatter<X::ValueType>,
        Y: Ranged<ValueType = f64> + ValueFormatter<f64>,
    {
        let mut mesh = chart.configure_mesh();
        mesh.light_line_style(BLACK.mix(0.05))
            .x_desc(self.x_label.as_str())
            .y_desc(self.y_label.as_str())
            .axis_desc_style((FONT_FAMILY, 16))
            .label_style((FONT_FAMILY, 13))
            .y_label_formatter(&tick_label_of);
        mesh
    }

    /// Draw the horizontal reference lines from `left` to `right` (the ends of the x axis),
    /// coloured from palette entry `first_colour` on, each named in the legend.
    fn draw_hlines<'a, DB, X, Y>(
        &self,
        chart: &mut ChartContext<'a, DB, Cartesian2d<X, Y>>,
        (left, right): (X::ValueType, X::ValueType),
        first_colour: usize,
    ) -> Result<()>
    where
        DB: DrawingBackend + 'a,
        X: Ranged,
        X::ValueType: Clone,
        Y: Ranged<ValueType = f64>,
    {
        for (j, r) in self.hlines.iter().enumerate() {
            let ends = [(left.clone(), r.at), (right.clone(), r.at)];
            draw_reference(chart, ends, &r.name, colour(first_colour + j), Key::HorizontalDashes)?;
        }
        Ok(())
    }

    /// Draw the legend (only if something was named) at `place`, which must be resolved.
    fn draw_legend<'a, DB, CT>(&self, chart: &mut ChartContext<'a, DB, CT>, place: LegendPosition) -> Result<()>
    where
        DB: DrawingBackend + 'a,
        CT: CoordTranslate,
    {
        chart
            .configure_series_labels()
            .position(place.to_plotters())
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.4))
            .label_font((FONT_FAMILY, 14))
            .draw()
            .map_err(plot_error)
    }
}

/// The small picture before a name in the legend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Key {
    /// A solid line (a series).
    Line,
    /// Two dashes side by side (a horizontal reference line).
    HorizontalDashes,
    /// Two dashes one above the other (a vertical reference line).
    VerticalDashes,
    /// A filled diamond (a marker).
    Diamond,
}

impl Key {
    /// The key drawn with its left end at `(x, y)` (the middle of the legend row), 24 pixels wide.
    fn element<DB: DrawingBackend>(self, (x, y): (i32, i32), c: RGBColor) -> DynElement<'static, DB, (i32, i32)> {
        let line = c.stroke_width(2);
        match self {
            Key::Line => PathElement::new(vec![(x, y), (x + 24, y)], line).into_dyn(),
            Key::HorizontalDashes => {
                DashedPathElement::new(vec![(x, y), (x + 24, y)], 9, DASH_GAP, line).into_dyn()
            }
            Key::VerticalDashes => DashedPathElement::new(vec![(x + 12, y - 8), (x + 12, y + 8)], 6, 4, line).into_dyn(),
            Key::Diamond => {
                Polygon::new(vec![(x + 12, y - 6), (x + 18, y), (x + 12, y + 6), (x + 6, y)], c.filled()).into_dyn()
            }
        }
    }
}

/// Draw one dashed reference line between the two `ends` in colour `c`, named `name` in the
/// legend with `key`. Dashes are measured in pixels, so they look alike on log axes.
fn draw_reference<'a, DB, X, Y>(
    chart: &mut ChartContext<'a, DB, Cartesian2d<X, Y>>,
    ends: [(X::ValueType, Y::ValueType); 2],
    name: &str,
    c: RGBColor,
    key: Key,
) -> Result<()>
where
    DB: DrawingBackend + 'a,
    X: Ranged,
    Y: Ranged,
    X::ValueType: Clone,
    Y::ValueType: Clone,
{
    chart
        .draw_series(DashedLineSeries::new(ends, DASH, DASH_GAP, c.stroke_width(2)))
        .map_err(plot_error)?
        .label(name)
        .legend(move |at| key.element(at, c));
    Ok(())
}

/// A chart the shared renderer can draw: its `Frame`, a check of its data that also works out
/// what drawing needs (the axis ranges), and the drawing itself.
trait Chart {
    /// What drawing needs, worked out from checked data (the axis ranges).
    type Layout;

    /// The title, labels, axes, size and legend place.
    fn frame(&self) -> &Frame;

    /// Check the data (errors name the chart and the offending series) and lay the chart out.
    fn layout(&self) -> Result<Self::Layout>;

    /// Draw the whole chart on `root`.
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>, layout: &Self::Layout) -> Result<()>;
}

/// A chart must have room to draw in.
fn check_size((w, h): (u32, u32)) -> Result<()> {
    if w < 100 || h < 100 {
        return Err(Error::Plot(format!("chart size {w}x{h} is too small (at least 100x100 pixels)")));
    }
    Ok(())
}

/// Render a chart as an SVG document.
fn render_svg<C: Chart>(chart: &C) -> Result<String> {
    let layout = chart.layout()?;
    let size = chart.frame().size;
    check_size(size)?;
    register_font()?;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
        chart.draw(&root, &layout)?;
        root.present().map_err(plot_error)?;
    }
    Ok(svg)
}

/// Render a chart as PNG bytes.
fn render_png<C: Chart>(chart: &C) -> Result<Vec<u8>> {
    let layout = chart.layout()?;
    let size = chart.frame().size;
    check_size(size)?;
    register_font()?;
    let (w, h) = size;
    let mut pixels = vec![0u8; w as usize * h as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut pixels, size).into_drawing_area();
        chart.draw(&root, &layout)?;
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

/// Save a chart to `path` as SVG or PNG, chosen by the extension, atomically.
fn save_chart<C: Chart>(chart: &C, path: &Path) -> Result<()> {
    let ext = path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
    let bytes = match ext.as_deref() {
        Some("svg") => render_svg(chart)?.into_bytes(),
        Some("png") => render_png(chart)?,
        _ => {
            return Err(Error::Plot(format!(
                "cannot save {}: the file name must end in .svg or .png",
                path.display()
            )))
        }
    };
    crate::io::write_bytes_atomically(path, &bytes)
}

/// Print a chart as SVG in the form evcxr shows inline (or the error, on stderr).
fn display_in_evcxr<C: Chart>(chart: &C) {
    match render_svg(chart) {
        Ok(svg) => println!("EVCXR_BEGIN_CONTENT image/svg+xml\n{svg}\nEVCXR_END_CONTENT"),
        Err(e) => eprintln!("{e}"),
    }
}

/// A learning-rate finder chart of three series (one with a NaN) and a reference line.
#[cfg(test)]
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
#[cfg(test)]
fn svg_texts(svg: &str) -> Vec<String> {
    svg.split("<text")
        .skip(1)
        .filter_map(|t| {
            let body = &t[t.find('>')? + 1..];
            Some(body[..body.find("</text>")?].trim().to_string())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn whole_number_axes_label_only_whole_ticks() {
        assert_eq!([1.0, 1.5, 2.0, 2.5].map(|v| x_tick_label(v, true)), ["1", "", "2", ""]);
        assert_eq!([1.0, 1.5, 0.25].map(|v| x_tick_label(v, false)), ["1", "1.5", "0.25"]);
    }

    #[test]
    fn padding_is_a_share_of_the_span_or_of_the_decades() {
        // 0..10 padded by 2% of 10 each side; a single value gets ±10% of itself (or ±1 at 0).
        assert_eq!(padded_range(0.0, 10.0, false, 0.02), -0.2..10.2);
        assert_eq!(padded_range(5.0, 5.0, false, 0.05), 4.5..5.5);
        assert_eq!(padded_range(0.0, 0.0, false, 0.05), -1.0..1.0);
        // 1e-4..1 is 4 decades; 5% of 4 decades is 0.2 decades each side. One value: ×/÷ 2.
        let r = padded_range(1e-4, 1.0, true, 0.05);
        assert!((r.start.log10() + 4.2).abs() < 1e-12 && (r.end.log10() - 0.2).abs() < 1e-12, "{r:?}");
        assert_eq!(padded_range(3.0, 3.0, true, 0.05), 1.5..6.0);
    }

    #[test]
    fn log_axes_get_ticks_at_powers_of_ten_or_even_steps_within_a_decade() {
        // Four decades: ticks at the five powers, light lines at 2…9 × each power in range.
        let (bold, light) = log_ticks(8.3e-6, 1.2e-1);
        assert_eq!(bold, [1e-5, 1e-4, 1e-3, 1e-2, 1e-1]);
        assert_eq!(light.len(), 4 * 8 + 1, "2e-5…9e-2, and 9e-6 above 8.3e-6: {light:?}");
        assert!(light.iter().all(|v| (8.3e-6..=1.2e-1).contains(v)));
        // Nineteen powers of ten: every third (19 / 8 rounded up), no light lines.
        let (bold, light) = log_ticks(1e-9, 1e9);
        assert_eq!(bold.len(), 7, "{bold:?}");
        assert!((bold[1] / 1e-6 - 1.0).abs() < 1e-12 && light.is_empty());
        // 5.85 … 8.47 holds no power of ten: (8.47 − 5.85) / 5 = 0.52 rounds to a step of 0.5.
        assert_eq!(log_ticks(5.85, 8.47).0, [6.0, 6.5, 7.0, 7.5, 8.0]);
        // 0.5 … 3 holds one power (1): a step of 0.5 again ((3 − 0.5) / 5 = 0.5).
        assert_eq!(log_ticks(0.5, 3.0).0, [0.5, 1.0, 1.5, 2.0, 2.5, 3.0]);
        assert_eq!([nice_step(0.13), nice_step(0.26), nice_step(6.9), nice_step(7.0)], [0.1, 0.2, 5.0, 10.0]);
    }

    #[test]
    fn save_writes_svg_and_png_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let chart = three_series();
        chart.save(dir.path().join("finder.svg")).expect("svg saved");
        chart.save(dir.path().join("finder.png")).expect("png saved");
        BarChart::new("bars").bars(vec![("a".into(), 1.0)]).save(dir.path().join("bars.svg")).expect("bar svg saved");
        let svg = std::fs::read_to_string(dir.path().join("finder.svg")).expect("read svg");
        assert!(svg.contains("AdaGrad"));
        let png = std::fs::read(dir.path().join("finder.png")).expect("read png");
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "PNG signature");
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .expect("list")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["bars.svg", "finder.png", "finder.svg"]);

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
        let png = BarChart::new("b").bars(vec![("a".into(), 1.0)]).size(300, 200).to_png().expect("png");
        let image = image::load_from_memory(&png).expect("decodes").to_rgb8();
        assert_eq!(image.dimensions(), (300, 200));
        let err = three_series().size(99, 400).to_svg().unwrap_err();
        assert!(matches!(&err, Error::Plot(m) if m.contains("99x400")), "{err}");
    }
}
