"""alignrank.data: the data stage (synthetic default, COCO 2017, or COCO-format folders) producing the dataset layout.

Modules: ``build`` (``run_data``), ``synthetic`` + ``shapes`` (embedded default), ``coco2017`` (official zips),
``coco_dir`` (COCO-format folders on disk, images linked), ``remote_zip`` (zip members over HTTP Range),
``download`` (resumable, verified HTTP), ``archive`` (zip integrity, safe extraction), ``coco_format``
(COCO JSON validation and COCO -> YOLO labels), ``report`` (skipped-record report), ``files`` (atomic
writes, fingerprint).
"""
