//! Tables (header + rows): HTML inline in evcxr, aligned text in a terminal.

use std::fmt;

/// A table of strings with a header row, an optional title and right-aligned numbers.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Table {
    /// Shown above the table.
    pub title: Option<String>,
    /// Column names.
    pub header: Vec<String>,
    /// Cells, row by row (each row as long as the header).
    pub rows: Vec<Vec<String>>,
}

impl Table {
    /// An empty table with these column names.
    pub fn new<S: ToString>(header: impl IntoIterator<Item = S>) -> Self {
        Table { title: None, header: header.into_iter().map(|s| s.to_string()).collect(), rows: vec![] }
    }

    /// A table with these column names and these rows, in one expression (e.g.
    /// `Table::from_rows(["run", "test accuracy"], runs.iter().map(|r| [r.name.clone(), format!("{:.4}", r.accuracy)]))`);
    /// rows are padded or cut to the header as in [`Table::row`].
    pub fn from_rows<H, R, C>(header: impl IntoIterator<Item = H>, rows: impl IntoIterator<Item = R>) -> Self
    where
        H: ToString,
        R: IntoIterator<Item = C>,
        C: ToString,
    {
        let mut table = Table::new(header);
        for r in rows {
            table.row(r);
        }
        table
    }

    /// Set the title shown above the table.
    pub fn title(mut self, title: impl Into<String>) -> Self {
        self.title = Some(title.into());
        self
    }

    /// Append a row; short rows are padded with empty cells, long rows are cut to the header.
    pub fn row<S: ToString>(&mut self, cells: impl IntoIterator<Item = S>) -> &mut Self {
        let mut r: Vec<String> = cells.into_iter().map(|s| s.to_string()).collect();
        r.resize(self.header.len(), String::new());
        self.rows.push(r);
        self
    }

    /// Builder form of [`Table::row`].
    pub fn with_row<S: ToString>(mut self, cells: impl IntoIterator<Item = S>) -> Self {
        self.row(cells);
        self
    }

    /// Builder form for two-column tables: a row `label | value`.
    pub fn with_pair(self, label: &str, value: impl fmt::Display) -> Self {
        self.with_row([label.to_string(), value.to_string()])
    }

    /// The table as an HTML `<table>` (numbers right-aligned).
    pub fn to_html(&self) -> String {
        let mut s = String::from("<div>");
        if let Some(t) = &self.title {
            s += &format!("<p><b>{}</b></p>", escape(t));
        }
        s += "<table style=\"border-collapse:collapse\"><thead><tr>";
        for h in &self.header {
            s += &format!("<th style=\"text-align:left;padding:2px 8px\">{}</th>", escape(h));
        }
        s += "</tr></thead><tbody>";
        for r in &self.rows {
            s += "<tr>";
            for c in r {
                let align = if looks_numeric(c) { "right" } else { "left" };
                s += &format!("<td style=\"text-align:{align};padding:2px 8px\">{}</td>", escape(c));
            }
            s += "</tr>";
        }
        s + "</tbody></table></div>"
    }

    /// Show the table inline in evcxr (called by the kernel when a cell ends with a table).
    pub fn evcxr_display(&self) {
        println!("EVCXR_BEGIN_CONTENT text/html\n{}\nEVCXR_END_CONTENT", self.to_html());
    }
}

impl fmt::Display for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.header.len();
        let mut widths: Vec<usize> = self.header.iter().map(|h| h.chars().count()).collect();
        for r in &self.rows {
            for (w, c) in widths.iter_mut().zip(r) {
                *w = (*w).max(c.chars().count());
            }
        }
        if let Some(t) = &self.title {
            writeln!(f, "{t}")?;
        }
        let line = |f: &mut fmt::Formatter<'_>, cells: &[String], header: bool| -> fmt::Result {
            let parts: Vec<String> = (0..n)
                .map(|i| {
                    let c = &cells[i];
                    if !header && looks_numeric(c) {
                        format!("{c:>w$}", w = widths[i])
                    } else {
                        format!("{c:<w$}", w = widths[i])
                    }
                })
                .collect();
            writeln!(f, "{}", parts.join("  ").trim_end())
        };
        line(f, &self.header, true)?;
        let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
        writeln!(f, "{}", rule.join("  "))?;
        for r in &self.rows {
            line(f, r, false)?;
        }
        Ok(())
    }
}

fn looks_numeric(s: &str) -> bool {
    let t = s.trim().trim_end_matches('%').replace([',', '_'], "");
    !t.is_empty() && t.parse::<f64>().is_ok()
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_columns_align_and_numbers_right_align() {
        let t = Table::new(["optimizer", "test acc"]).with_row(["adam", "0.4812"]).with_row(["sgd", "0.5"]);
        let s = t.to_string();
        let lines: Vec<&str> = s.lines().collect();
        assert_eq!(lines[0], "optimizer  test acc");
        assert_eq!(lines[1], "---------  --------");
        assert_eq!(lines[2], "adam         0.4812");
        assert_eq!(lines[3], "sgd             0.5");
    }

    #[test]
    fn html_escapes_and_pads_rows() {
        let mut t = Table::new(["a", "b"]).title("x<y");
        t.row(["<1>"]);
        let h = t.to_html();
        assert!(h.contains("<b>x&lt;y</b>"));
        assert!(h.contains("&lt;1&gt;"));
        assert_eq!(t.rows[0], vec!["<1>".to_string(), String::new()]);
    }

    #[test]
    fn from_rows_takes_any_iterator_of_rows_and_fits_them_to_the_header() {
        let runs = [("adam", 0.4812, 12), ("sgd", 0.5, 30)];
        let t = Table::from_rows(["optimizer", "test acc", "epochs"], runs.iter().map(|(n, a, e)| [n.to_string(), a.to_string(), e.to_string()]))
            .title("Results");
        let by_rows = Table::new(["optimizer", "test acc", "epochs"])
            .title("Results")
            .with_row(["adam", "0.4812", "12"])
            .with_row(["sgd", "0.5", "30"]);
        assert_eq!(t, by_rows);
        // A short row is padded with empty cells, a long one cut to the header's three columns.
        let t = Table::from_rows(["a", "b", "c"], vec![vec![1], vec![1, 2, 3, 4]]);
        assert_eq!(t.rows, vec![vec!["1", "", ""], vec!["1", "2", "3"]]);
        assert!(Table::from_rows(["a"], Vec::<Vec<String>>::new()).rows.is_empty());
    }
}
