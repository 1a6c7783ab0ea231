"""Archive-scale picking: SDS trees and folders cut into station x time chunks that own disjoint
spans (:mod:`.sources`, :mod:`.chunks`), picked on Dask distributed with one picker per worker
(:mod:`.runner`), resumable through per-chunk Parquet and a manifest (:mod:`.manifest`);
``xiaonet pick --sds`` runs :mod:`.command`. See docs/archive.md."""
