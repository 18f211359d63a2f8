//! MNIST / Fashion-MNIST IDX files, gzipped or not.
