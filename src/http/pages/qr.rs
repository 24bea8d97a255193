//! QR codes as inline SVG, for links a phone should open: "add a device" and share
//! links. Drawn by the `qrcode` crate from the link alone, so the markup is the
//! crate's fixed SVG frame and path data of numbers; no user input reaches it,
//! which is why the templates may insert it unescaped.

use qrcode::render::svg;
use qrcode::{EcLevel, QrCode};

/// Pixels per module at the SVG's own size; CSS scales it to the page.
const MODULE_PX: u32 = 6;

/// An SVG drawing of a QR code.
pub struct QrSvg(String);

impl QrSvg {
    /// The QR code of an absolute link, or `None` if it does not fit in one
    /// (links here are about a hundred characters; a QR code holds two thousand).
    pub fn of(link: &str) -> Option<Self> {
        // Level M: survives a smudged screen or glare, and stays coarse enough for
        // an old phone camera.
        let code = QrCode::with_error_correction_level(link.as_bytes(), EcLevel::M).ok()?;
        let image = code
            .render::<svg::Color>()
            .module_dimensions(MODULE_PX, MODULE_PX)
            .dark_color(svg::Color("#000"))
            .light_color(svg::Color("#fff"))
            .build();
        // Inline in HTML the XML declaration would be a stray comment: keep the <svg>.
        let start = image.find("<svg")?;
        Some(Self(image[start..].to_string()))
    }

    pub fn markup(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_becomes_an_svg_without_the_link_in_it() {
        let link = format!("https://ferry.example.org/link/{}", "ab".repeat(32));
        let qr = QrSvg::of(&link).expect("fits");
        let svg = qr.markup();
        assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        assert!(svg.ends_with("</svg>"));
        assert!(!svg.contains("ferry.example.org") && !svg.contains("<?xml"));
        // Only the crate's frame and path data: no text, scripts or links.
        assert!(!svg.contains("<script") && !svg.contains("href"));
    }

    #[test]
    fn an_oversized_text_has_no_code() {
        assert!(QrSvg::of(&"x".repeat(5000)).is_none());
    }
}
