"""metrics subpackage of temcoco_core."""
