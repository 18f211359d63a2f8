//! Bar charts: one bar per named category (e.g. test error per model), with optional dashed
//! horizontal reference lines.

use std::ops::Range;

use plotters::coord::ranged1d::{AsRangedCoord, SegmentValue, ValueFormatter};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::{colour, log_axis, min_max, padded_range, plot_error, Chart, Frame, FONT_FAMILY};
use crate::Result;

/// A bar chart: one bar per named category (e.g. test error per model).
#[derive(Debug, Clone, PartialEq)]
pub struct BarChart {
    frame: Frame,
    bars: Vec<(String, f64)>,
}

impl BarChart {
    /// An empty bar chart with this title.
    pub fn new(title: impl Into<String>) -> Self {
        BarChart { frame: Frame::new("bar chart", title.into()), bars: vec![] }
    }

    frame_methods!();

    /// Add bars, one per (category, value), drawn left to right in this order; a bar whose
    /// value is not finite is not drawn and its category says so.
    pub fn bars(mut self, bars: Vec<(String, f64)>) -> Self {
        self.bars.extend(bars);
        self
    }

    /// The name shown under each bar (with "(not finite)" where there is no bar to see).
    fn category_names(&self) -> Vec<String> {
        self.bars
            .iter()
            .map(|(name, v)| if v.is_finite() { name.clone() } else { format!("{name} (not finite)") })
            .collect()
    }

    /// What the legend must not cover, in (fraction of the x axis, y value): each finite bar as
    /// three upright lines (its edges and middle) from the `baseline`, and the reference lines.
    fn drawn_lines(&self, baseline: f64) -> Vec<Vec<(f64, f64)>> {
        let n = self.bars.len() as f64;
        let mut lines: Vec<Vec<(f64, f64)>> = self
            .bars
            .iter()
            .enumerate()
            .filter(|(_, (_, v))| v.is_finite())
            .flat_map(|(i, &(_, v))| [0.1, 0.5, 0.9].map(|at| vec![((i as f64 + at) / n, baseline), ((i as f64 + at) / n, v)]))
            .collect();
        lines.extend(self.frame.hlines.iter().map(|r| vec![(0.0, r.at), (1.0, r.at)]));
        lines
    }

    /// Draw with the given y axis specification; bars start at `baseline`.
    fn draw_with<DB, Y>(&self, root: &DrawingArea<DB, Shift>, y: Y, y_span: &Range<f64>, baseline: f64) -> Result<()>
    where
        DB: DrawingBackend,
        Y: AsRangedCoord<Value = f64>,
        Y::CoordDescType: ValueFormatter<f64>,
    {
        let f = &self.frame;
        let n = self.bars.len();
        let names = self.category_names();
        let longest = names.iter().map(|name| name.chars().count()).max().unwrap_or(0);
        // Turn the category names upright when they would not fit side by side (~7 px a character).
        let plot_width = f.size.0.saturating_sub(110) as usize;
        let upright = n > 1 && (longest * 7 + 10) * n > plot_width;
        let x_area = if upright { 44 + longest as u32 * 6 } else { 48 };

        // Integer ranges are inclusive: 0..n-1 makes n segments, one per bar.
        let mut chart = f.chart_on(root, (0..n - 1).into_segmented(), y, x_area)?;
        f.mesh(&mut chart)
            .disable_x_mesh()
            .set_tick_mark_size(LabelAreaPosition::Bottom, 0)
            .x_labels(n + 1)
            .x_label_formatter(&|_| String::new()) // the names are drawn below
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
        for (i, name) in names.iter().enumerate() {
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
                    .data(self.bars.iter().enumerate().filter(|(_, b)| b.1.is_finite()).map(|(i, b)| (i, b.1))),
            )
            .map_err(plot_error)?;
        if f.hlines.is_empty() {
            return Ok(());
        }
        f.draw_hlines(&mut chart, (SegmentValue::Exact(0), SegmentValue::Last), 1)?;
        let place = f.legend.resolve(&self.drawn_lines(baseline), (&(0.0..1.0), y_span), (false, f.log_y));
        f.draw_legend(&mut chart, place)
    }
}

impl Chart for BarChart {
    /// The y range to draw.
    type Layout = Range<f64>;

    fn frame(&self) -> &Frame {
        &self.frame
    }

    /// The y range: from zero (linear) or below the smallest bar (log) to above the largest,
    /// reference lines included; checks that some bar is finite and that a log axis can show
    /// every finite bar.
    fn layout(&self) -> Result<Self::Layout> {
        let f = &self.frame;
        if self.bars.is_empty() {
            return Err(f.error("there are no bars to draw"));
        }
        for (name, v) in &self.bars {
            if f.log_y && v.is_finite() && *v <= 0.0 {
                return Err(f.error(format!("bar \"{name}\" has value {v}, which cannot be drawn on a logarithmic axis")));
            }
        }
        f.check_hlines()?;
        let finite = self.bars.iter().map(|b| b.1).filter(|v| v.is_finite());
        let (lo, hi) = min_max(finite.chain(f.hlines.iter().map(|r| r.at))).unwrap_or((0.0, 1.0));
        if self.bars.iter().all(|b| !b.1.is_finite()) {
            let names: Vec<String> = self.bars.iter().map(|(name, v)| format!("\"{name}\" = {v}")).collect();
            return Err(f.error(format!("no bar has a finite value to draw ({})", names.join(", "))));
        }
        if f.log_y {
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
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>, y: &Self::Layout) -> Result<()> {
        if self.frame.log_y {
            self.draw_with(root, log_axis(y), y, y.start)
        } else {
            self.draw_with(root, y.clone(), y, 0.0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{svg_texts, PALETTE};
    use super::*;
    use crate::Error;

    fn named(bars: &[(&str, f64)]) -> Vec<(String, f64)> {
        bars.iter().map(|(n, v)| (n.to_string(), *v)).collect()
    }

    #[test]
    fn bar_chart_names_every_category() {
        let bars = named(&[("VGG-16", 7.5), ("ResNet-20", 8.25), ("MiniGoogLeNet", 6.5)]);
        let svg = BarChart::new("Test error").x_label("model").y_label("error (%)").bars(bars).to_svg().expect("draws");
        for text in ["Test error", "model", "error (%)", "VGG-16", "ResNet-20", "MiniGoogLeNet"] {
            assert!(svg_texts(&svg).iter().any(|t| t == text), "SVG lacks a <text> element reading {text:?}");
        }
        // Linear bars start at zero: the y range is 0 .. 4 + 5% of 4.
        let y = BarChart::new("t").bars(named(&[("a", 2.0), ("b", 4.0)])).layout().expect("range");
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
        let svg = BarChart::new("one").bars(named(&[("only", 3.0)])).to_svg().expect("draws");
        assert!(svg_texts(&svg).iter().any(|t| t == "only"));
    }

    #[test]
    fn log_axis_with_non_positive_values_is_an_error() {
        let err = BarChart::new("t").log_y().bars(named(&[("zero", 0.0)])).to_svg().unwrap_err();
        assert!(matches!(&err, Error::Plot(m) if m.contains("zero")), "{err}");
        let err = BarChart::new("t").log_y().bars(named(&[("a", 1.0)])).hline("none", 0.0).to_svg().unwrap_err();
        assert!(matches!(&err, Error::Plot(m) if m.contains("\"none\"") && m.contains("logarithmic")), "{err}");
    }

    #[test]
    fn empty_bar_chart_is_a_clear_error() {
        let err = BarChart::new("none").to_svg().unwrap_err();
        assert!(matches!(&err, Error::Plot(m) if m.contains("no bars")), "{err}");
    }

    #[test]
    fn non_finite_bars_are_named_not_drawn_and_fatal_only_when_all_are() {
        let chart = BarChart::new("final loss").bars(named(&[("lr 1e-2", 0.5), ("lr 1e1", f64::NAN), ("lr 1e-1", 0.25)]));
        let svg = chart.to_svg().expect("two finite bars draw");
        assert!(svg_texts(&svg).iter().any(|t| t == "lr 1e1 (not finite)"), "{:?}", svg_texts(&svg));
        // Two bars are drawn, as filled rectangles of the first colour.
        let c = PALETTE[0];
        let fill = format!("fill=\"#{:02X}{:02X}{:02X}\"", c.0, c.1, c.2);
        assert_eq!(svg.split("<rect").skip(1).filter(|r| r.contains(&fill)).count(), 2);
        // The range ignores the NaN: 0 .. 0.5 + 5%.
        let y = chart.layout().expect("range");
        assert!(y.start == 0.0 && (y.end - 0.525).abs() < 1e-12, "{y:?}");

        let err = BarChart::new("gone").bars(named(&[("a", f64::NAN), ("b", f64::INFINITY)])).to_svg().unwrap_err();
        assert!(matches!(&err, Error::Plot(m) if m.contains("no bar has a finite value") && m.contains("\"b\" = inf")), "{err}");
    }

    #[test]
    fn log_axis_within_a_decade_has_labelled_ticks() {
        // A log axis within one decade still has labelled ticks: 6 … 8.25 padded by 8% of its
        // decades is about 5.85 … 8.47, ticked every 0.5 (see `log_ticks`).
        let svg = BarChart::new("t").log_y().bars(named(&[("a", 6.5), ("b", 8.25)])).hline("target", 6.0).to_svg().expect("draws");
        let texts = svg_texts(&svg);
        for tick in ["6", "6.5", "7", "7.5", "8"] {
            assert!(texts.iter().any(|t| t == tick), "no tick {tick}: {texts:?}");
        }
    }

    #[test]
    fn reference_line_on_bars_is_named_and_counts_in_the_range() {
        // Bars 2 and 4, a target at 6: y spans 0..6, padded by 5% of 6 above.
        let chart = BarChart::new("error").bars(named(&[("a", 2.0), ("b", 4.0)])).hline("target", 6.0);
        let y = chart.layout().expect("range");
        assert!(y.start == 0.0 && (y.end - 6.3).abs() < 1e-12, "{y:?}");
        let svg = chart.to_svg().expect("draws");
        assert!(svg_texts(&svg).iter().any(|t| t == "target"), "the legend names the line");
        // Without reference lines there is nothing to name, and no legend box.
        let plain = BarChart::new("error").bars(named(&[("a", 2.0), ("b", 4.0)])).to_svg().expect("draws");
        assert!(!svg_texts(&plain).iter().any(|t| t == "target"));
    }
}
