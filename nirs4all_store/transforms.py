"""Where `SNV` lived before the workbench layout (kept so that pickles and `.n4a` bundles
written by earlier versions, which name `nirs4all_store.transforms.SNV`, still load)."""

from nirs4all_store.workbench.training.transforms import SNV

__all__ = ["SNV"]
