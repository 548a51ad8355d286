"""engine subpackage of temcoco_core."""
