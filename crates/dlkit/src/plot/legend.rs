//! The legend: where it goes (a fixed corner or the place that hides the least of the drawing)
//! and what its entries say about data that could not be drawn.

use std::ops::Range;

use plotters::prelude::SeriesLabelPosition;

/// Where the legend box sits inside the plotting area.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LegendPosition {
    /// The place among the eight below that covers the fewest data (the default; see
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
    /// Top edge, half way across.
    UpperMiddle,
    /// Bottom edge, half way across.
    LowerMiddle,
}

impl LegendPosition {
    /// The fixed places `Auto` chooses from, in order of preference, with the part of the plot
    /// (x from, x to, y from, y to, as fractions of the axes) a legend there may cover.
    const PLACES: [(LegendPosition, [f64; 4]); 8] = [
        (LegendPosition::UpperRight, [0.6, 1.0, 0.6, 1.0]),
        (LegendPosition::UpperLeft, [0.0, 0.4, 0.6, 1.0]),
        (LegendPosition::LowerRight, [0.6, 1.0, 0.0, 0.4]),
        (LegendPosition::LowerLeft, [0.0, 0.4, 0.0, 0.4]),
        (LegendPosition::MiddleRight, [0.6, 1.0, 0.3, 0.7]),
        (LegendPosition::MiddleLeft, [0.0, 0.4, 0.3, 0.7]),
        (LegendPosition::UpperMiddle, [0.3, 0.7, 0.6, 1.0]),
        (LegendPosition::LowerMiddle, [0.3, 0.7, 0.0, 0.4]),
    ];

    /// The matching plotters position (`Auto` must be resolved first; it maps to upper right).
    pub(super) fn to_plotters(self) -> SeriesLabelPosition {
        match self {
            LegendPosition::Auto | LegendPosition::UpperRight => SeriesLabelPosition::UpperRight,
            LegendPosition::UpperLeft => SeriesLabelPosition::UpperLeft,
            LegendPosition::LowerRight => SeriesLabelPosition::LowerRight,
            LegendPosition::LowerLeft => SeriesLabelPosition::LowerLeft,
            LegendPosition::MiddleRight => SeriesLabelPosition::MiddleRight,
            LegendPosition::MiddleLeft => SeriesLabelPosition::MiddleLeft,
            LegendPosition::UpperMiddle => SeriesLabelPosition::UpperMiddle,
            LegendPosition::LowerMiddle => SeriesLabelPosition::LowerMiddle,
        }
    }

    /// This place, or for `Auto` the place [`least_covered_position`] finds for `lines`.
    pub(super) fn resolve(
        self,
        lines: &[Vec<(f64, f64)>],
        ranges: (&Range<f64>, &Range<f64>),
        logs: (bool, bool),
    ) -> LegendPosition {
        match self {
            LegendPosition::Auto => least_covered_position(lines, ranges, logs),
            fixed => fixed,
        }
    }
}

/// The legend place (see [`LegendPosition::PLACES`]) that the fewest drawn lines pass under:
/// every polyline is sampled at 16 points per segment, in axis fractions (log axes in
/// decades); ties go to the earlier place, so a falling curve keeps its legend top right, and
/// the middle places are taken only when every corner and side is more covered.
pub fn least_covered_position(
    lines: &[Vec<(f64, f64)>],
    (x, y): (&Range<f64>, &Range<f64>),
    (log_x, log_y): (bool, bool),
) -> LegendPosition {
    let fraction = |v: f64, r: &Range<f64>, log: bool| {
        if log {
            (v.log10() - r.start.log10()) / (r.end.log10() - r.start.log10())
        } else {
            (v - r.start) / (r.end - r.start)
        }
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

/// The legend entry of a series of `total` points of which `finite` can be drawn: the name,
/// then what was not drawn, if anything.
pub(super) fn series_label(name: &str, total: usize, finite: usize) -> String {
    match (total, total - finite) {
        (0, _) => format!("{name} (no points)"),
        (_, 0) => name.to_string(),
        (t, skipped) if skipped == t => format!("{name} (no finite point: diverged)"),
        (_, 1) => format!("{name} (1 point not finite, not drawn)"),
        (_, skipped) => format!("{name} ({skipped} points not finite, not drawn)"),
    }
}

/// The legend entry of a single point (a marker) or the name of a bar: the name, and whether
/// it could not be drawn for a non-finite value.
pub(super) fn single_label(name: &str, finite: bool) -> String {
    if finite {
        name.to_string()
    } else {
        format!("{name} (not finite, not drawn)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn a_vertical_line_keeps_the_legend_off_its_side() {
        let unit = (&(0.0..1.0), &(0.0..1.0));
        // A falling curve would take the top right, but a vertical line at x = 0.8 runs through
        // it (and through every right-hand place): the top left is free.
        let lines = vec![vec![(0.0, 0.5), (0.3, 0.2), (1.0, 0.05)], vec![(0.8, 0.0), (0.8, 1.0)]];
        assert_eq!(least_covered_position(&lines, unit, (false, false)), LegendPosition::UpperLeft);
        // With lines near both sides (a learning-rate finder's bounds) every corner and edge
        // place is crossed; the top middle is not.
        let lines = vec![vec![(0.0, 0.5), (0.3, 0.2), (1.0, 0.05)], vec![(0.1, 0.0), (0.1, 1.0)], vec![(0.8, 0.0), (0.8, 1.0)]];
        assert_eq!(least_covered_position(&lines, unit, (false, false)), LegendPosition::UpperMiddle);
    }

    #[test]
    fn legend_entries_say_what_was_not_drawn() {
        assert_eq!(series_label("SGD", 5, 5), "SGD");
        assert_eq!(series_label("lr 1e1", 10, 7), "lr 1e1 (3 points not finite, not drawn)");
        assert_eq!(series_label("lr 1e1", 10, 9), "lr 1e1 (1 point not finite, not drawn)");
        assert_eq!(series_label("lr 1e1", 4, 0), "lr 1e1 (no finite point: diverged)");
        assert_eq!(series_label("empty", 0, 0), "empty (no points)");
        assert_eq!(single_label("best", true), "best");
        assert_eq!(single_label("best", false), "best (not finite, not drawn)");
    }
}
