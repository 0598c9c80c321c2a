"""Reports: a study as a tidy frame, the ablation tables built from it (data first, rendering second).
Reads only the storage and the trials' records; it never imports the training code."""
