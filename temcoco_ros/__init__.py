"""ROS 2 front end of TemCoCo fusion: a thin rclpy node over temcoco_core."""
