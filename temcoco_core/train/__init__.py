"""train subpackage of temcoco_core."""
