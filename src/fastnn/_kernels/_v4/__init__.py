"""The kernels built for x86-64-v4 (AVX-512) in a portable build;
fastnn._kernels chooses them on a CPU that has them."""
