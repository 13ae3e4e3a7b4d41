"""Threading and bookkeeping shared by the node, the demo and the benchmarks (ROS-free)."""
