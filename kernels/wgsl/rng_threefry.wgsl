// Threefry2x32-20 (Salmon et al. 2011, Random123's threefry2x32_R with R = 20): adds,
// rotations by constants and xors only; the key is injected every four rounds. Written
// out round by round so every rotation amount is a literal.
// Library file: concatenated in front of the kernels that use it (no entry points).

const THREEFRY_PARITY: u32 = 0x1BD11BDAu;

fn threefry2x32_20(ctr: vec2<u32>, key: vec2<u32>) -> vec2<u32> {
    let k0 = key.x;
    let k1 = key.y;
    let k2 = THREEFRY_PARITY ^ k0 ^ k1;
    var a = ctr.x + k0;
    var b = ctr.y + k1;
    a += b;
    b = ((b << 13u) | (b >> 19u)) ^ a;
    a += b;
    b = ((b << 15u) | (b >> 17u)) ^ a;
    a += b;
    b = ((b << 26u) | (b >> 6u)) ^ a;
    a += b;
    b = ((b << 6u) | (b >> 26u)) ^ a;
    a += k1;
    b += k2 + 1u;
    a += b;
    b = ((b << 17u) | (b >> 15u)) ^ a;
    a += b;
    b = ((b << 29u) | (b >> 3u)) ^ a;
    a += b;
    b = ((b << 16u) | (b >> 16u)) ^ a;
    a += b;
    b = ((b << 24u) | (b >> 8u)) ^ a;
    a += k2;
    b += k0 + 2u;
    a += b;
    b = ((b << 13u) | (b >> 19u)) ^ a;
    a += b;
    b = ((b << 15u) | (b >> 17u)) ^ a;
    a += b;
    b = ((b << 26u) | (b >> 6u)) ^ a;
    a += b;
    b = ((b << 6u) | (b >> 26u)) ^ a;
    a += k0;
    b += k1 + 3u;
    a += b;
    b = ((b << 17u) | (b >> 15u)) ^ a;
    a += b;
    b = ((b << 29u) | (b >> 3u)) ^ a;
    a += b;
    b = ((b << 16u) | (b >> 16u)) ^ a;
    a += b;
    b = ((b << 24u) | (b >> 8u)) ^ a;
    a += k1;
    b += k2 + 4u;
    a += b;
    b = ((b << 13u) | (b >> 19u)) ^ a;
    a += b;
    b = ((b << 15u) | (b >> 17u)) ^ a;
    a += b;
    b = ((b << 26u) | (b >> 6u)) ^ a;
    a += b;
    b = ((b << 6u) | (b >> 26u)) ^ a;
    a += k2;
    b += k0 + 5u;
    return vec2<u32>(a, b);
}
