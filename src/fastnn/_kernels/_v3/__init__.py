"""The kernels built for x86-64-v3 (AVX2, FMA) in a portable build;
fastnn._kernels chooses them on a CPU that has them."""
