"""io subpackage of temcoco_core."""
