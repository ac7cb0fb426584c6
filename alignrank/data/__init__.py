"""alignrank.data: the data stage (synthetic default or COCO 2017) producing the dataset layout contract.

Modules: ``stage`` (``run_data``), ``synthetic`` + ``shapes`` (embedded default), ``coco2017`` (official zips),
``download`` (resumable, verified HTTP), ``archive`` (zip integrity, safe extraction), ``coco_format``
(COCO JSON validation and COCO -> YOLO labels), ``report`` (skipped-record report), ``files`` (atomic
writes, fingerprint).
"""
