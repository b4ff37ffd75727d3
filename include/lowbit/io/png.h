// A minimal PNG writer: 8-bit grayscale, no filtering, zlib stream of stored (uncompressed)
// deflate blocks, with the CRC-32 of every chunk and the Adler-32 of the zlib stream.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace lowbit::io {

uint32_t crc32(std::span<const uint8_t> bytes);    // PNG/zlib CRC-32 (polynomial 0xEDB88320)
uint32_t adler32(std::span<const uint8_t> bytes);  // zlib Adler-32

// The PNG file image of a width x height grayscale image (row-major, one byte a pixel).
std::vector<uint8_t> encode_png_gray(int width, int height, std::span<const uint8_t> pixels);
// Writes it to `path`; throws lowbit::Error naming the path on failure.
void write_png_gray(const std::string& path, int width, int height, std::span<const uint8_t> pixels);

}  // namespace lowbit::io
