"""Evaluation: COCO metrics (pycocotools) and the method-specific ones, on files or on the sweep's runs.

* :mod:`~alignrank.eval.coco` - the 12 standard COCO numbers (robust to an empty prediction list);
* :mod:`~alignrank.eval.rank` - rank consistency of scores with IoU per ground truth (Kendall, Spearman, top-1 gap);
* :mod:`~alignrank.eval.calibration` - detection ECE (equal-mass bins) and the reliability diagram;
* :mod:`~alignrank.eval.tide` - TIDE-style error breakdown (counts and dAP per error type);
* :mod:`~alignrank.eval.nms_free` - AP of plain top-k decoding without NMS;
* :mod:`~alignrank.eval.files` - ``alignrank evaluate --gt --pred`` with input validation;
* :mod:`~alignrank.eval.predict` - pre-NMS candidates and post-NMS predictions of a checkpoint;
* :mod:`~alignrank.eval.runs` - ``run_evaluate``: every (variant, seed) run of the sweep.

All AP-type numbers are fractions in [0, 1] (tables show them in %).
"""
