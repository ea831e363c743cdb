//! A plain-text table, columns as wide as their widest cell.

pub fn render(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let line = |cells: Vec<&str>| -> String {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        format!("| {} |", padded.join(" | "))
    };
    let rule = format!(
        "|{}|",
        widths
            .iter()
            .map(|w| "-".repeat(w + 2))
            .collect::<Vec<_>>()
            .join("|")
    );
    let mut out = vec![line(headers.to_vec()), rule];
    for row in rows {
        out.push(line(row.iter().map(String::as_str).collect()));
    }
    out.join("\n")
}

#[cfg(test)]
mod tests {
    use super::render;

    #[test]
    fn pads_columns_to_the_widest_cell() {
        let out = render(
            &["scenario", "result"],
            &[
                vec!["apply".into(), "PASS".into()],
                vec!["hpa".into(), "FAIL".into()],
            ],
        );
        assert_eq!(
            out,
            "| scenario | result |\n|----------|--------|\n| apply    | PASS   |\n| hpa      | FAIL   |"
        );
    }
}
