//! The in-memory data set: images as NCHW bytes plus labels.

use crate::error::DatasetError;

/// Images and labels held in memory as bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dataset {
    /// `n × c × h × w` pixel bytes, NCHW (each image's channels are separate planes).
    pub images: Vec<u8>,
    /// One class index 0..=9 per image.
    pub labels: Vec<u8>,
    /// Number of images.
    pub n: usize,
    /// Channels per image.
    pub c: usize,
    /// Rows per image.
    pub h: usize,
    /// Columns per image.
    pub w: usize,
}

impl Dataset {
    /// Builds a data set, checking that `images` holds exactly `labels.len()` images of
    /// `c × h × w` bytes and that every label is 0..=9.
    pub fn new(
        images: Vec<u8>,
        labels: Vec<u8>,
        c: usize,
        h: usize,
        w: usize,
    ) -> Result<Self, DatasetError> {
        let n = labels.len();
        if c * h * w == 0 || images.len() != n * c * h * w {
            return Err(DatasetError::Config(format!(
                "{} image bytes do not hold {n} images of {c}×{h}×{w}",
                images.len()
            )));
        }
        if let Some(i) = labels.iter().position(|&l| l > 9) {
            return Err(DatasetError::Config(format!(
                "label at index {i} is {}, expected 0..=9",
                labels[i]
            )));
        }
        Ok(Dataset {
            images,
            labels,
            n,
            c,
            h,
            w,
        })
    }

    /// Bytes per image (`c × h × w`).
    pub fn image_len(&self) -> usize {
        self.c * self.h * self.w
    }

    /// The pixel bytes of image `i` (CHW). Panics if `i >= n`.
    pub fn image(&self, i: usize) -> &[u8] {
        let len = self.image_len();
        &self.images[i * len..(i + 1) * len]
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.n
    }

    /// Whether there are no images.
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }
}
