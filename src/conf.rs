//! The `-C FILE` configuration format, as DMon reads it.
//!
//! A file holds words separated by blanks (spaces, tabs, newlines). A word may be
//! written in double quotes, where blanks and `#` are literal and backslash escapes
//! are decoded (`\n \t \r \a \b \f \v \e \0 \" \\ \xHH`). `#` outside quotes starts a
//! comment to the end of the line. Each option is its long name without dashes,
//! followed by its argument if it takes one:
//!
//! ```text
//! # a service
//! pid-file /run/crond.pid
//! cmd-user "log:wheel"
//! stderr-redir
//! ```
//!
//! This module only splits the text into words with their positions; turning them
//! into options, which needs to know which options take values, is `cli`'s job.

/// One word of a config file and where it started (1-based line and column).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Word {
    pub text: String,
    pub line: usize,
    pub column: usize,
}

/// A syntax error with its position (1-based).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// Splits config text into words. Bytes that are not UTF-8 are an error, since
/// option values end up as paths, names and numbers.
pub fn words(text: &[u8]) -> Result<Vec<Word>, SyntaxError> {
    let mut out = Vec::new();
    let mut lexer = Lexer { text, pos: 0, line: 1, column: 1 };
    loop {
        lexer.skip_blanks_and_comments();
        let (line, column) = (lexer.line, lexer.column);
        let Some(first) = lexer.peek() else { return Ok(out) };
        let bytes = if first == b'"' { lexer.quoted()? } else { lexer.bare() };
        let text = String::from_utf8(bytes).map_err(|_| SyntaxError {
            line,
            column,
            message: "word is not valid UTF-8".into(),
        })?;
        out.push(Word { text, line, column });
    }
}

struct Lexer<'a> {
    text: &'a [u8],
    pos: usize,
    line: usize,
    column: usize,
}

impl Lexer<'_> {
    fn peek(&self) -> Option<u8> {
        self.text.get(self.pos).copied()
    }

    fn bump(&mut self) -> Option<u8> {
        let byte = self.peek()?;
        self.pos += 1;
        if byte == b'\n' {
            self.line += 1;
            self.column = 1;
        } else {
            self.column += 1;
        }
        Some(byte)
    }

    fn error(&self, line: usize, column: usize, message: impl Into<String>) -> SyntaxError {
        SyntaxError { line, column, message: message.into() }
    }

    fn skip_blanks_and_comments(&mut self) {
        while let Some(byte) = self.peek() {
            match byte {
                b' ' | b'\t' | b'\n' | b'\r' => {
                    self.bump();
                }
                b'#' => {
                    while self.peek().is_some_and(|b| b != b'\n') {
                        self.bump();
                    }
                }
                _ => return,
            }
        }
    }

    fn bare(&mut self) -> Vec<u8> {
        let mut word = Vec::new();
        while let Some(byte) = self.peek() {
            if matches!(byte, b' ' | b'\t' | b'\n' | b'\r' | b'#' | b'"') {
                break;
            }
            word.push(byte);
            self.bump();
        }
        word
    }

    fn quoted(&mut self) -> Result<Vec<u8>, SyntaxError> {
        let (line, column) = (self.line, self.column);
        self.bump(); // the opening quote
        let mut word = Vec::new();
        loop {
            let (escape_line, escape_column) = (self.line, self.column);
            match self.bump() {
                None => return Err(self.error(line, column, "unterminated quoted string")),
                Some(b'"') => return Ok(word),
                Some(b'\\') => {
                    let decoded = match self.bump() {
                        None => return Err(self.error(line, column, "unterminated quoted string")),
                        Some(b'n') => b'\n',
                        Some(b't') => b'\t',
                        Some(b'r') => b'\r',
                        Some(b'a') => 0x07,
                        Some(b'b') => 0x08,
                        Some(b'f') => 0x0c,
                        Some(b'v') => 0x0b,
                        Some(b'e') => 0x1b,
                        Some(b'0') => 0,
                        Some(b'"') => b'"',
                        Some(b'\\') => b'\\',
                        Some(b'x') => {
                            let digits = [self.bump(), self.bump()];
                            let hex = |d: Option<u8>| d.and_then(|b| (b as char).to_digit(16));
                            match (hex(digits[0]), hex(digits[1])) {
                                (Some(high), Some(low)) => (high * 16 + low) as u8,
                                _ => {
                                    return Err(self.error(
                                        escape_line,
                                        escape_column,
                                        "\\x must be followed by two hexadecimal digits",
                                    ));
                                }
                            }
                        }
                        Some(other) => {
                            let shown = if other.is_ascii_graphic() {
                                format!("\\{}", other as char)
                            } else {
                                format!("\\ followed by byte 0x{other:02x}")
                            };
                            return Err(self.error(escape_line, escape_column, format!("unknown escape {shown}")));
                        }
                    };
                    word.push(decoded);
                }
                Some(byte) => word.push(byte),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(input: &str) -> Vec<String> {
        words(input.as_bytes()).unwrap().into_iter().map(|w| w.text).collect()
    }

    #[test]
    fn splits_words_and_skips_comments() {
        assert_eq!(
            texts("pid-file /run/x.pid # the pid\n  no-daemon\n#only\n"),
            ["pid-file", "/run/x.pid", "no-daemon"]
        );
        assert_eq!(texts(""), Vec::<String>::new());
    }

    #[test]
    fn quotes_and_escapes() {
        assert_eq!(texts(r#"environ "A=b c # d" x"#), ["environ", "A=b c # d", "x"]);
        assert_eq!(texts(r#""\n\t\"\\\x41\e""#), ["\n\t\"\\A\x1b"]);
        assert_eq!(texts(r#""""#), [""]);
    }

    #[test]
    fn positions() {
        let w = words(b"a\n  bb \"c\"").unwrap();
        assert_eq!((w[1].line, w[1].column), (2, 3));
        assert_eq!((w[2].line, w[2].column), (2, 6));
    }

    #[test]
    fn errors_name_their_place() {
        let e = words(b"x\n  \"abc").unwrap_err();
        assert_eq!((e.line, e.column), (2, 3));
        assert!(e.message.contains("unterminated"));
        let e = words(b"\"a\\q\"").unwrap_err();
        assert_eq!((e.line, e.column, e.message.as_str()), (1, 3, "unknown escape \\q"));
        assert!(words(b"\"\\xZ1\"").unwrap_err().message.contains("hexadecimal"));
        assert!(words(b"\xff\xfe").unwrap_err().message.contains("UTF-8"));
    }
}
