"""``outlier_detection``: flag cosmic rays and other outliers against the median of an exposure list."""
