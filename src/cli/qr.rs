//! QR codes for linking an account (WhatsApp, Weixin): drawn in the terminal with half-block characters and
//! written as a PNG for hosts without a terminal that can show them.

use std::io::BufWriter;
use std::path::Path;

use qrcode::{Color, QrCode};

use crate::util::fs::PathError;

/// Light modules around the code, as scanners expect.
const QUIET_ZONE: usize = 4;
/// PNG pixels per module.
const PNG_SCALE: usize = 8;

#[derive(Debug, thiserror::Error)]
pub enum QrError {
    #[error("the QR payload cannot be encoded: {0}")]
    Encode(String),
    #[error(transparent)]
    Write(#[from] PathError),
}

fn matrix(data: &str) -> Result<(usize, Vec<bool>), QrError> {
    let code = QrCode::new(data.as_bytes()).map_err(|e| QrError::Encode(e.to_string()))?;
    let width = code.width();
    let dark = code
        .to_colors()
        .into_iter()
        .map(|c| c == Color::Dark)
        .collect();
    Ok((width, dark))
}

/// The code as text: two modules per character cell (▀ ▄ █), dark on a light background, so it
/// scans from a dark terminal too.
pub fn render_terminal(data: &str) -> Result<String, QrError> {
    let (width, dark) = matrix(data)?;
    let size = width + 2 * QUIET_ZONE;
    let is_dark = |x: usize, y: usize| {
        x >= QUIET_ZONE
            && y >= QUIET_ZONE
            && x < width + QUIET_ZONE
            && y < width + QUIET_ZONE
            && dark[(y - QUIET_ZONE) * width + (x - QUIET_ZONE)]
    };
    let mut out = String::new();
    for y in (0..size).step_by(2) {
        for x in 0..size {
            // Light modules are drawn as blocks: the terminal's dark background is the ink.
            let (top, bottom) = (!is_dark(x, y), y + 1 < size && !is_dark(x, y + 1));
            out.push(match (top, bottom) {
                (true, true) => '█',
                (true, false) => '▀',
                (false, true) => '▄',
                (false, false) => ' ',
            });
        }
        out.push('\n');
    }
    Ok(out)
}

/// Writes the code as a grayscale PNG (mode 0600: it grants access to the account until it
/// expires).
pub fn write_png(data: &str, path: &Path) -> Result<(), QrError> {
    let (width, dark) = matrix(data)?;
    let size = (width + 2 * QUIET_ZONE) * PNG_SCALE;
    let mut pixels = vec![255u8; size * size];
    for my in 0..width {
        for mx in 0..width {
            if !dark[my * width + mx] {
                continue;
            }
            for dy in 0..PNG_SCALE {
                let row = (my + QUIET_ZONE) * PNG_SCALE + dy;
                let start = row * size + (mx + QUIET_ZONE) * PNG_SCALE;
                pixels[start..start + PNG_SCALE].fill(0);
            }
        }
    }
    let io = |e: std::io::Error| PathError::new("cannot write", path, e);
    let file = {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(path)
            .map_err(io)?
    };
    let mut encoder = png::Encoder::new(BufWriter::new(file), size as u32, size as u32);
    encoder.set_color(png::ColorType::Grayscale);
    encoder.set_depth(png::BitDepth::Eight);
    let png_err = |e: png::EncodingError| io(std::io::Error::other(e.to_string()));
    let mut writer = encoder.write_header().map_err(png_err)?;
    writer.write_image_data(&pixels).map_err(png_err)?;
    writer.finish().map_err(png_err)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_terminal_rendering_is_square_and_framed() {
        let text = render_terminal("2@abc,def,ghi").unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let width = lines[0].chars().count();
        assert!(width >= 21 + 2 * QUIET_ZONE);
        assert!(lines.iter().all(|l| l.chars().count() == width));
        assert_eq!(lines.len(), width.div_ceil(2));
        assert!(
            lines[0].chars().all(|c| c == '█'),
            "the quiet zone is light"
        );
    }

    #[test]
    fn the_png_has_the_expected_size_and_mode() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("qr.png");
        write_png("2@abc,def,ghi", &path).unwrap();
        let decoder =
            png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&path).unwrap()));
        let reader = decoder.read_info().unwrap();
        let info = reader.info();
        assert_eq!(info.width, info.height);
        assert_eq!(info.width as usize % PNG_SCALE, 0);
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
}
