//! Line charts: named series of (x, y) points, dashed horizontal and vertical reference lines,
//! single marked points, and a legend that names all of them.

use std::ops::Range;

use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
use plotters::coord::Shift;
use plotters::prelude::*;

use super::legend::{series_label, single_label};
use super::{colour, draw_reference, is_finite_point, log_axis, min_max, padded_range, plot_error, x_tick_label};
use super::{Chart, Frame, Key, ReferenceLine};
use crate::Result;

/// Series with at most this many points also get a dot at each point.
const MARK_POINTS_UP_TO: usize = 30;

/// One named curve of a [`LineChart`].
#[derive(Debug, Clone, PartialEq)]
struct Series {
    name: String,
    points: Vec<(f64, f64)>,
}

/// A single named point of a [`LineChart`] (e.g. the best epoch), drawn as a diamond.
#[derive(Debug, Clone, PartialEq)]
struct Marker {
    name: String,
    at: (f64, f64),
}

/// A line chart: named series of (x, y) points, optional dashed reference lines (horizontal and
/// vertical), marked points, a legend.
#[derive(Debug, Clone, PartialEq)]
pub struct LineChart {
    frame: Frame,
    series: Vec<Series>,
    vlines: Vec<ReferenceLine>,
    markers: Vec<Marker>,
}

impl LineChart {
    /// An empty chart with this title.
    pub fn new(title: impl Into<String>) -> Self {
        LineChart { frame: Frame::new("line chart", title.into()), series: vec![], vlines: vec![], markers: vec![] }
    }

    frame_methods!();

    /// Use a logarithmic x axis (every x, vertical lines and markers included, must then be
    /// positive).
    pub fn log_x(mut self) -> Self {
        self.frame.log_x = true;
        self
    }

    /// Add a curve; points with a non-finite coordinate are not drawn, and the legend says how
    /// many (a series with no finite point is named in the legend as diverged).
    pub fn series(mut self, name: impl Into<String>, points: impl AsRef<[(f64, f64)]>) -> Self {
        self.series.push(Series { name: name.into(), points: points.as_ref().to_vec() });
        self
    }

    /// Add many curves at once, each a (name, points) pair, in order (e.g. one per run:
    /// `.series_all(runs.iter().map(|r| (r.name.clone(), r.history.val_loss())))`).
    pub fn series_all<N, P>(mut self, all: impl IntoIterator<Item = (N, P)>) -> Self
    where
        N: Into<String>,
        P: IntoIterator<Item = (f64, f64)>,
    {
        self.series
            .extend(all.into_iter().map(|(name, points)| Series { name: name.into(), points: points.into_iter().collect() }));
        self
    }

    /// Add a vertical dashed reference line at `x` from the bottom to the top of the chart,
    /// named in the legend (e.g. a learning-rate bound, the best or the last epoch).
    pub fn vline(mut self, name: impl Into<String>, x: f64) -> Self {
        self.vlines.push(ReferenceLine { name: name.into(), at: x });
        self
    }

    /// Add zero or more named vertical lines (e.g. `.vlines(history.stopped_early.map(…))`,
    /// drawn only when the run stopped early).
    pub fn vlines<N: Into<String>>(mut self, lines: impl IntoIterator<Item = (N, f64)>) -> Self {
        self.vlines.extend(lines.into_iter().map(|(name, at)| ReferenceLine { name: name.into(), at }));
        self
    }

    /// Mark the single point (`x`, `y`) with a diamond named in the legend (e.g. the best
    /// validation accuracy); a non-finite point is named as not drawn.
    pub fn marker(mut self, name: impl Into<String>, x: f64, y: f64) -> Self {
        self.markers.push(Marker { name: name.into(), at: (x, y) });
        self
    }

    /// Whether every finite x of the series and markers is a whole number (epochs, steps): the
    /// axis then labels no ticks between them (no "epoch 1.5").
    fn whole_number_x(&self) -> bool {
        let points = self.series.iter().flat_map(|s| &s.points).chain(self.markers.iter().map(|m| &m.at));
        let mut xs = points.map(|p| p.0).filter(|x| x.is_finite()).peekable();
        xs.peek().is_some() && xs.all(|x| x.fract() == 0.0)
    }

    /// Check that every finite point (of series and markers) fits on the logarithmic axes;
    /// the error names what the point belongs to.
    fn check_log_axes(&self) -> Result<()> {
        let f = &self.frame;
        let check = |what: &dyn Fn() -> String, points: &[(f64, f64)]| -> Result<()> {
            for &(x, y) in points.iter().filter(|p| is_finite_point(p)) {
                if f.log_x && x <= 0.0 {
                    return Err(f.error(format!("the x axis is logarithmic but {} has x = {x}", what())));
                }
                if f.log_y && y <= 0.0 {
                    return Err(f.error(format!("the y axis is logarithmic but {} has y = {y}", what())));
                }
            }
            Ok(())
        };
        for s in &self.series {
            check(&|| format!("series \"{}\"", s.name), &s.points)?;
        }
        for m in &self.markers {
            check(&|| format!("marker \"{}\"", m.name), &[m.at])?;
        }
        Ok(())
    }

    /// The polylines the legend must not cover (series, reference lines, markers), in data
    /// coordinates of the axes `x` × `y`.
    fn drawn_lines(&self, x: &Range<f64>, y: &Range<f64>) -> Vec<Vec<(f64, f64)>> {
        let mut lines: Vec<Vec<(f64, f64)>> = self.series.iter().map(|s| s.points.clone()).collect();
        lines.extend(self.frame.hlines.iter().map(|r| vec![(x.start, r.at), (x.end, r.at)]));
        lines.extend(self.vlines.iter().map(|r| vec![(r.at, y.start), (r.at, y.end)]));
        lines.extend(self.markers.iter().map(|m| vec![m.at]));
        lines
    }

    /// Draw with the given axis specifications; `spans` are the axes' ranges (reference lines run
    /// across them; the automatic legend place is worked out in them).
    fn draw_with<DB, X, Y>(
        &self,
        root: &DrawingArea<DB, Shift>,
        x: X,
        y: Y,
        (x_span, y_span): (&Range<f64>, &Range<f64>),
    ) -> Result<()>
    where
        DB: DrawingBackend,
        X: AsRangedCoord<Value = f64>,
        Y: AsRangedCoord<Value = f64>,
        X::CoordDescType: ValueFormatter<f64>,
        Y::CoordDescType: ValueFormatter<f64>,
    {
        let f = &self.frame;
        let mut chart = f.chart_on(root, x, y, 48)?;
        let whole_only = !f.log_x && self.whole_number_x();
        f.mesh(&mut chart).x_label_formatter(&|v| x_tick_label(*v, whole_only)).draw().map_err(plot_error)?;

        for (i, s) in self.series.iter().enumerate() {
            let c = colour(i);
            let points: Vec<(f64, f64)> = s.points.iter().copied().filter(is_finite_point).collect();
            let label = series_label(&s.name, s.points.len(), points.len());
            let dot_size = if points.len() <= MARK_POINTS_UP_TO { 3 } else { 0 };
            chart
                .draw_series(LineSeries::new(points, c.stroke_width(2)).point_size(dot_size))
                .map_err(plot_error)?
                .label(label)
                .legend(move |at| Key::Line.element(at, c));
        }
        let mut next = self.series.len();
        f.draw_hlines(&mut chart, (x_span.start, x_span.end), next)?;
        next += f.hlines.len();
        for r in &self.vlines {
            draw_reference(&mut chart, [(r.at, y_span.start), (r.at, y_span.end)], &r.name, colour(next), Key::VerticalDashes)?;
            next += 1;
        }
        for m in &self.markers {
            let c = colour(next);
            next += 1;
            let finite = is_finite_point(&m.at);
            let at = finite.then_some(m.at);
            chart
                .draw_series(at.map(|p| EmptyElement::at(p) + Polygon::new(vec![(0, -7), (7, 0), (0, 7), (-7, 0)], c.filled())))
                .map_err(plot_error)?
                .label(single_label(&m.name, finite))
                .legend(move |at| Key::Diamond.element(at, c));
        }
        let lines = self.drawn_lines(x_span, y_span);
        let place = f.legend.resolve(&lines, (x_span, y_span), (f.log_x, f.log_y));
        f.draw_legend(&mut chart, place)
    }
}

impl Chart for LineChart {
    /// The x and y ranges to draw.
    type Layout = (Range<f64>, Range<f64>);

    fn frame(&self) -> &Frame {
        &self.frame
    }

    /// The x and y ranges: from the finite data, reference lines and markers, padded; checks
    /// log axes and that some series has a finite point.
    fn layout(&self) -> Result<Self::Layout> {
        let f = &self.frame;
        if self.series.is_empty() {
            return Err(f.error("there is no series to draw (a line chart needs at least one)"));
        }
        self.check_log_axes()?;
        f.check_hlines()?;
        for r in &self.vlines {
            f.check_reference(&format!("vertical line \"{}\"", r.name), "x", r.at, f.log_x)?;
        }
        let finite = || self.series.iter().flat_map(|s| s.points.iter().copied()).filter(is_finite_point);
        if finite().next().is_none() {
            let said: Vec<String> = self
                .series
                .iter()
                .map(|s| match s.points.len() {
                    0 => format!("\"{}\" has no points", s.name),
                    1 => format!("\"{}\" has 1 point, not finite", s.name),
                    n => format!("\"{}\" has {n} points, none finite", s.name),
                })
                .collect();
            return Err(f.error(format!(
                "no finite points to draw: no series has a point with both coordinates finite ({})",
                said.join(", ")
            )));
        }
        let marks = || self.markers.iter().map(|m| m.at).filter(is_finite_point);
        let xs = finite().chain(marks()).map(|p| p.0).chain(self.vlines.iter().map(|r| r.at));
        let ys = finite().chain(marks()).map(|p| p.1).chain(f.hlines.iter().map(|r| r.at));
        let ((x_lo, x_hi), (y_lo, y_hi)) = (min_max(xs).unwrap_or((0.0, 1.0)), min_max(ys).unwrap_or((0.0, 1.0)));
        Ok((padded_range(x_lo, x_hi, f.log_x, 0.02), padded_range(y_lo, y_hi, f.log_y, 0.05)))
    }

    /// Draw on any backend, picking linear or logarithmic axes.
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>, (x, y): &Self::Layout) -> Result<()> {
        let spans = (x, y);
        let (x, y) = (x.clone(), y.clone());
        match (self.frame.log_x, self.frame.log_y) {
            (false, false) => self.draw_with(root, x, y, spans),
            (true, false) => self.draw_with(root, log_axis(&x), y, spans),
            (false, true) => self.draw_with(root, x, log_axis(&y), spans),
            (true, true) => self.draw_with(root, log_axis(&x), log_axis(&y), spans),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{svg_texts, three_series, PALETTE};
    use super::*;
    use crate::Error;

    #[test]
    fn svg_names_title_axes_and_every_series() {
        let svg = three_series().to_svg().expect("chart draws");
        assert!(svg.starts_with("<svg"), "an SVG document: {}", &svg[..40.min(svg.len())]);
        let texts = svg_texts(&svg);
        for text in ["Learning-rate finder", "learning rate", "training loss", "SGD", "AdaGrad", "6% target"] {
            assert!(texts.iter().any(|t| t == text), "SVG lacks a <text> element reading {text:?}");
        }
        // Adam's NaN at 1e-2 is not drawn, and its legend entry says so.
        assert!(texts.iter().any(|t| t == "Adam (1 point not finite, not drawn)"), "{texts:?}");
    }

    #[test]
    fn an_axis_of_epochs_labels_whole_epochs_only() {
        // Six epochs: plotters puts ticks at half epochs too; only the whole ones are labelled.
        let epochs: Vec<(f64, f64)> = (1..=6).map(|e| (e as f64, 0.1 * e as f64)).collect();
        let texts = svg_texts(&LineChart::new("accuracy").series("run", epochs).to_svg().expect("draws"));
        assert!(["1", "2", "6"].iter().all(|l| texts.iter().any(|t| t == l)), "{texts:?}");
        assert!(!texts.iter().any(|t| t == "1.5" || t == "5.5"), "{texts:?}");
        // Fractional x values keep every tick's label.
        let halves: Vec<(f64, f64)> = (1..=6).map(|e| (e as f64 / 2.0, 0.1 * e as f64)).collect();
        let texts = svg_texts(&LineChart::new("accuracy").series("run", halves).to_svg().expect("draws"));
        assert!(texts.iter().any(|t| t.contains('.') && t.parse::<f64>().is_ok_and(|v| v.fract() != 0.0 && v > 0.4)), "{texts:?}");
    }

    #[test]
    fn text_is_escaped_in_svg() {
        let svg = LineChart::new("a < b & c").series("x", vec![(0.0, 1.0), (1.0, 2.0)]).to_svg().expect("draws");
        assert!(svg.contains("a &lt; b &amp; c"));
    }

    #[test]
    fn ranges_come_from_finite_data_with_a_margin() {
        let chart = LineChart::new("t")
            .series("a", vec![(0.0, 10.0), (10.0, 30.0), (f64::INFINITY, 1e9)])
            .hline("ref", 5.0);
        let (x, y) = chart.layout().expect("ranges");
        // x spans 0..10 padded by 2% of 10 = 0.2 each side; y spans 5..30 padded by 5% of 25.
        assert!((x.start + 0.2).abs() < 1e-12 && (x.end - 10.2).abs() < 1e-12, "{x:?}");
        assert!((y.start - 3.75).abs() < 1e-12 && (y.end - 31.25).abs() < 1e-12, "{y:?}");

        // Log x over 1e-4..1e0 (4 decades): 2% of 4 decades = 0.08 decades each side.
        let chart = LineChart::new("t").log_x().series("a", vec![(1e-4, 1.0), (1.0, 2.0)]);
        let (x, _) = chart.layout().expect("ranges");
        assert!((x.start.log10() + 4.08).abs() < 1e-9 && (x.end.log10() - 0.08).abs() < 1e-9, "{x:?}");
    }

    #[test]
    fn vertical_lines_and_markers_widen_the_ranges() {
        // Data x 0..10; a vertical line at 20 makes it 0..20, padded by 2% of 20 = 0.4 each side.
        // A marker at y = 50 lifts y from 10..30 to 10..50, padded by 5% of 40 = 2 each side.
        let chart = LineChart::new("t").series("a", vec![(0.0, 10.0), (10.0, 30.0)]).vline("stop", 20.0).marker("m", 5.0, 50.0);
        let (x, y) = chart.layout().expect("ranges");
        assert!((x.start + 0.4).abs() < 1e-12 && (x.end - 20.4).abs() < 1e-12, "{x:?}");
        assert!((y.start - 8.0).abs() < 1e-12 && (y.end - 52.0).abs() < 1e-12, "{y:?}");
        // On a log x axis: data 1e-4..1e-2 and a line at 1 span 4 decades, 0.08 decades padding.
        let chart = LineChart::new("t").log_x().series("a", vec![(1e-4, 1.0), (1e-2, 2.0)]).vline("max lr", 1.0);
        let (x, _) = chart.layout().expect("ranges");
        assert!((x.start.log10() + 4.08).abs() < 1e-9 && (x.end.log10() - 0.08).abs() < 1e-9, "{x:?}");
    }

    #[test]
    fn vertical_line_is_dashed_full_height_and_named_on_a_log_axis() {
        let svg = LineChart::new("finder")
            .log_x()
            .series("loss", vec![(1e-5, 2.3), (1e-3, 1.0), (1e-1, 4.0)])
            .vline("min lr", 1e-4)
            .size(400, 300)
            .to_svg()
            .expect("draws");
        assert!(svg_texts(&svg).iter().any(|t| t == "min lr"), "the legend names the vertical line");
        // The line is drawn as dashes (in the second colour of the palette): in pixels each dash
        // is 10 long with 6 blank, so the dashes together cover about 10/16 of the plot's height.
        // The legend key draws two short dashes of its own elsewhere; the line's are the many
        // at one x.
        let c = PALETTE[1];
        let stroke = format!("stroke=\"#{:02X}{:02X}{:02X}\"", c.0, c.1, c.2);
        let polyline_points = |p: &str| -> Vec<(f64, f64)> {
            let pts = p.split("points=\"").nth(1).and_then(|q| q.split('"').next()).unwrap_or("");
            pts.split_whitespace()
                .filter_map(|q| q.split_once(',').and_then(|(a, b)| Some((a.parse().ok()?, b.parse().ok()?))))
                .collect()
        };
        let dashes: Vec<Vec<(f64, f64)>> =
            svg.split("<polyline").skip(1).filter(|p| p.contains(&stroke)).map(polyline_points).collect();
        let line_x = dashes[0][0].0;
        let line: Vec<(f64, f64)> = dashes
            .iter()
            .filter(|d| d.iter().all(|p| p.0 == line_x))
            .map(|d| {
                let ys = d.iter().map(|p| p.1);
                (ys.clone().fold(f64::MAX, f64::min), ys.fold(f64::MIN, f64::max))
            })
            .collect();
        assert!(line.len() >= 10, "a dashed line, got {} dashes: {dashes:?}", line.len());
        let drawn: f64 = line.iter().map(|d| d.1 - d.0).sum();
        let top = line.iter().map(|d| d.0).fold(f64::MAX, f64::min);
        let bottom = line.iter().map(|d| d.1).fold(f64::MIN, f64::max);
        assert!((drawn / (bottom - top) - 10.0 / 16.0).abs() < 0.04, "dash share {}", drawn / (bottom - top));
        // It runs the height of the plot: from the top of the plot area to the x axis, which
        // sit where the series' dots (circles) reach, extended by the 5% padding of y each side.
        let circles: Vec<(f64, f64)> = svg
            .split("<circle")
            .skip(1)
            .filter_map(|c| {
                let attr = |name: &str| c.split(&format!("{name}=\"")).nth(1)?.split('"').next()?.parse::<f64>().ok();
                Some((attr("cx")?, attr("cy")?))
            })
            .collect();
        assert_eq!(circles.len(), 3, "{circles:?}");
        // Dots at y 2.3, 1.0, 4.0: y spans 1..4, so the plot is 3 × 1.1 = 3.3 units high and
        // the dot at 4.0 sits 0.15 units below the top, the one at 1.0 0.15 above the bottom.
        let (y_max_px, y_min_px) = (circles[2].1, circles[1].1);
        let px_per_unit = (y_min_px - y_max_px) / 3.0;
        assert!((top - (y_max_px - 0.15 * px_per_unit)).abs() <= 2.0, "top {top} vs {y_max_px}");
        assert!((bottom - (y_min_px + 0.15 * px_per_unit)).abs() <= 2.0, "bottom {bottom} vs {y_min_px}");
        // On the log x axis, 1e-4 lies a quarter of the way from the dot at 1e-5 to the one at
        // 1e-1 (one decade of four).
        let expected_x = circles[0].0 + (circles[2].0 - circles[0].0) / 4.0;
        assert!((line_x - expected_x).abs() <= 1.0, "line at x = {line_x}, 1e-4 is at {expected_x}");
    }

    #[test]
    fn log_axis_with_non_positive_values_is_an_error() {
        let err = LineChart::new("t").log_x().series("bad", vec![(0.0, 1.0), (1.0, 2.0)]).to_svg().unwrap_err();
        assert!(matches!(&err, Error::Plot(m) if m.contains("bad") && m.contains("x = 0")), "{err}");
        let err = LineChart::new("t").log_y().series("neg", vec![(1.0, -1.0)]).to_svg().unwrap_err();
        assert!(matches!(&err, Error::Plot(m) if m.contains("neg") && m.contains("y = -1")), "{err}");
        let err = LineChart::new("t").log_x().series("a", vec![(1.0, 1.0)]).vline("zero", 0.0).to_svg().unwrap_err();
        assert!(matches!(&err, Error::Plot(m) if m.contains("vertical line \"zero\"") && m.contains("logarithmic")), "{err}");
        let err = LineChart::new("t").log_y().series("a", vec![(1.0, 1.0)]).marker("m", 1.0, -2.0).to_svg().unwrap_err();
        assert!(matches!(&err, Error::Plot(m) if m.contains("marker \"m\"") && m.contains("y = -2")), "{err}");
        let err = LineChart::new("t").series("a", vec![(1.0, 1.0)]).vline("nan", f64::NAN).to_svg().unwrap_err();
        assert!(matches!(&err, Error::Plot(m) if m.contains("\"nan\"") && m.contains("cannot be drawn")), "{err}");
    }

    #[test]
    fn empty_charts_are_clear_errors() {
        let err = LineChart::new("nothing").to_svg().unwrap_err();
        assert!(matches!(&err, Error::Plot(m) if m.contains("no series")), "{err}");
        let err = LineChart::new("nans").series("a", vec![(f64::NAN, 1.0)]).to_svg().unwrap_err();
        assert!(matches!(&err, Error::Plot(m) if m.contains("no finite points")), "{err}");
    }

    #[test]
    fn diverged_series_are_named_not_fatal() {
        // One learning rate diverged entirely, one part way, one trained: the chart draws and
        // each legend entry says what happened.
        let chart = LineChart::new("Learning-rate sweep")
            .log_x()
            .series("lr 1e-2", vec![(1.0, 2.0), (2.0, 1.5), (3.0, 1.0)])
            .series("lr 1e0", vec![(1.0, 2.0), (2.0, f64::NAN), (3.0, f64::INFINITY), (4.0, f64::NAN)])
            .series("lr 1e1", vec![(1.0, f64::NAN), (2.0, f64::NAN)])
            .series("never ran", vec![]);
        let texts = svg_texts(&chart.to_svg().expect("a chart with one good series draws"));
        for entry in [
            "lr 1e-2",
            "lr 1e0 (3 points not finite, not drawn)",
            "lr 1e1 (no finite point: diverged)",
            "never ran (no points)",
        ] {
            assert!(texts.iter().any(|t| t == entry), "legend lacks {entry:?}: {texts:?}");
        }
        // Points that are not drawn do not move the axes: x spans the finite 1..3 (not 4, where
        // "lr 1e0" has a NaN), padded by 2% of log10(3) decades each side; y spans 1..2.
        let (x, y) = chart.layout().expect("ranges");
        let decades = 3f64.log10();
        assert!((x.start.log10() + 0.02 * decades).abs() < 1e-9, "{x:?}");
        assert!((x.end.log10() - 1.02 * decades).abs() < 1e-9, "{x:?}");
        assert!((y.start - 0.95).abs() < 1e-12 && (y.end - 2.05).abs() < 1e-12, "{y:?}");

        // When every series diverged, the error says so and names them.
        let err = LineChart::new("all gone")
            .series("lr 1e1", vec![(1.0, f64::NAN), (2.0, f64::NAN)])
            .series("lr 1e2", vec![(f64::INFINITY, 1.0)])
            .to_svg()
            .unwrap_err();
        assert!(
            matches!(&err, Error::Plot(m) if m.contains("no finite points")
                && m.contains("\"lr 1e1\" has 2 points, none finite") && m.contains("\"lr 1e2\" has 1 point, not finite")),
            "{err}"
        );
    }

    #[test]
    fn series_all_adds_each_pair_in_order() {
        let runs = [("adam", vec![(1.0, 2.0), (2.0, 1.0)]), ("sgd", vec![(1.0, 2.5), (2.0, 2.0)])];
        let chart = LineChart::new("t").series_all(runs.iter().map(|(n, p)| (*n, p.iter().copied())));
        let one_by_one = LineChart::new("t").series("adam", runs[0].1.clone()).series("sgd", runs[1].1.clone());
        assert_eq!(chart, one_by_one);
        assert_eq!(chart.series.len(), 2);
    }

    #[test]
    fn marker_is_a_diamond_named_in_the_legend() {
        let svg = LineChart::new("t")
            .series("val acc", vec![(1.0, 0.5), (2.0, 0.7), (3.0, 0.6)])
            .marker("best epoch", 2.0, 0.7)
            .marker("lost", f64::NAN, 0.1)
            .to_svg()
            .expect("draws");
        let texts = svg_texts(&svg);
        assert!(texts.iter().any(|t| t == "best epoch"), "{texts:?}");
        assert!(texts.iter().any(|t| t == "lost (not finite, not drawn)"), "{texts:?}");
        // The diamond (second colour, filled) is drawn twice: on the chart and in the legend;
        // the non-finite marker (third colour) only in the legend.
        let fill = |c: RGBColor| format!("fill=\"#{:02X}{:02X}{:02X}\"", c.0, c.1, c.2);
        let polygons = |c| svg.split("<polygon").skip(1).filter(|p| p.contains(&fill(c))).count();
        assert_eq!(polygons(PALETTE[1]), 2);
        assert_eq!(polygons(PALETTE[2]), 1);
    }
}
