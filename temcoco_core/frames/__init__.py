"""frames subpackage of temcoco_core."""
