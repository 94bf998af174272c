//! Cutting a long text into messages a network accepts.

/// Cuts `text` into parts of at most `max` units (`unit` measures a character: UTF-16 units
/// for Telegram, one per character for Weixin), at a paragraph break if one falls in the
/// second half of a part, else at a line break, else at a space, else anywhere (between
/// characters, never inside one).
pub fn split(text: &str, max: usize, unit: fn(char) -> usize) -> Vec<String> {
    let max = max.max(1);
    let mut parts = Vec::new();
    let mut rest = text.trim();
    while rest.chars().map(unit).sum::<usize>() > max {
        // The byte index where `max` units end.
        let mut units = 0;
        let mut limit = rest.len();
        for (i, c) in rest.char_indices() {
            if units + unit(c) > max {
                limit = i;
                break;
            }
            units += unit(c);
        }
        let head = &rest[..limit];
        let half = head.len() / 2;
        let cut = ["\n\n", "\n", " "]
            .iter()
            .find_map(|sep| head.rfind(sep).filter(|i| *i >= half))
            .unwrap_or(limit);
        let cut = if cut == 0 {
            limit.max(first_char_len(rest))
        } else {
            cut
        };
        parts.push(rest[..cut].trim_end().to_owned());
        rest = rest[cut..].trim_start();
    }
    if !rest.is_empty() {
        parts.push(rest.to_owned());
    }
    parts
}

fn first_char_len(s: &str) -> usize {
    s.chars().next().map_or(0, char::len_utf8)
}

/// One message per top-level line (Hermes' `split_multiline_messages`): blank lines separate,
/// an indented line stays with the line before it, a fenced code block stays whole; each unit
/// longer than `max` is cut further with `split`.
pub fn split_per_line(text: &str, max: usize, unit: fn(char) -> usize) -> Vec<String> {
    let mut units: Vec<String> = Vec::new();
    let mut current: Vec<&str> = Vec::new();
    let mut in_fence = false;
    let flush = |current: &mut Vec<&str>, units: &mut Vec<String>| {
        let joined = current.join("\n");
        let joined = joined.trim();
        if !joined.is_empty() {
            units.push(joined.to_owned());
        }
        current.clear();
    };
    for line in text.lines() {
        let fence = line.trim_start().starts_with("```");
        if in_fence {
            current.push(line);
            if fence {
                in_fence = false;
                flush(&mut current, &mut units);
            }
            continue;
        }
        if fence {
            flush(&mut current, &mut units);
            current.push(line);
            in_fence = true;
            continue;
        }
        if line.trim().is_empty() {
            flush(&mut current, &mut units);
        } else if line.starts_with([' ', '\t']) && !current.is_empty() {
            current.push(line);
        } else {
            flush(&mut current, &mut units);
            current.push(line);
        }
    }
    flush(&mut current, &mut units);
    units
        .into_iter()
        .flat_map(|u| split(&u, max, unit))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chars(_: char) -> usize {
        1
    }

    #[test]
    fn long_texts_are_cut_on_boundaries_and_never_inside_a_character() {
        assert_eq!(split("  short  ", 10, chars), ["short"]);
        assert_eq!(
            split("first paragraph\n\nsecond one", 20, chars),
            ["first paragraph", "second one"]
        );
        assert_eq!(split("aaaa bbbb cccc", 10, chars), ["aaaa bbbb", "cccc"]);
        assert_eq!(split("一二三四五六", 4, chars), ["一二三四", "五六"]);
        // 😀 is two UTF-16 units: a limit of 3 units holds one.
        assert_eq!(split("😀😀", 3, char::len_utf16), ["😀", "😀"]);
        assert_eq!(split("", 5, chars), Vec::<String>::new());
    }

    #[test]
    fn per_line_keeps_indented_lines_and_code_blocks_together() {
        let text = "hello\n  - nested\nsecond\n\n```\ncode\n\nmore\n```\nlast";
        assert_eq!(
            split_per_line(text, 100, chars),
            [
                "hello\n  - nested",
                "second",
                "```\ncode\n\nmore\n```",
                "last"
            ]
        );
        assert_eq!(split_per_line("abcdef", 3, chars), ["abc", "def"]);
    }
}
