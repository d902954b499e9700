// Crypto (SCRAM's primitives) of every compiled backend against published known answers:
// FIPS 180-2 SHA-256, RFC 4231 HMAC-SHA-256, RFC 7914 section 11 PBKDF2-HMAC-SHA-256, and the
// SCRAM-SHA-256 exchange of RFC 7677 section 3 computed end to end from them.
#include <gtest/gtest.h>

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "tls_backends/tls.hpp"

namespace pggw::tls::test {
namespace {

std::span<const std::uint8_t> bytes(std::string_view s) {
    return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}

template <typename Bytes>
std::string hex(const Bytes& b) {
    static constexpr char kDigits[] = "0123456789abcdef";
    std::string out;
    for (std::uint8_t x : b) {
        out += kDigits[x >> 4];
        out += kDigits[x & 15];
    }
    return out;
}

std::string base64(std::span<const std::uint8_t> in) {
    static constexpr char kAlphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::string out;
    for (std::size_t i = 0; i < in.size(); i += 3) {
        std::uint32_t v = std::uint32_t{in[i]} << 16;
        if (i + 1 < in.size()) v |= std::uint32_t{in[i + 1]} << 8;
        if (i + 2 < in.size()) v |= in[i + 2];
        out += kAlphabet[(v >> 18) & 63];
        out += kAlphabet[(v >> 12) & 63];
        out += i + 1 < in.size() ? kAlphabet[(v >> 6) & 63] : '=';
        out += i + 2 < in.size() ? kAlphabet[v & 63] : '=';
    }
    return out;
}

std::vector<std::uint8_t> unbase64(std::string_view in) {
    auto value = [](char c) -> int {
        if (c >= 'A' && c <= 'Z') return c - 'A';
        if (c >= 'a' && c <= 'z') return c - 'a' + 26;
        if (c >= '0' && c <= '9') return c - '0' + 52;
        return c == '+' ? 62 : c == '/' ? 63 : -1;
    };
    std::vector<std::uint8_t> out;
    std::uint32_t acc = 0;
    int bits = 0;
    for (char c : in) {
        int v = value(c);
        if (v < 0) break;  // '='
        acc = (acc << 6) | static_cast<std::uint32_t>(v);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out.push_back(static_cast<std::uint8_t>(acc >> bits));
        }
    }
    return out;
}

class TlsCrypto : public ::testing::TestWithParam<std::string> {
  protected:
    void SetUp() override {
        std::string error;
        Backend* b = load_backend(GetParam(), error);
        ASSERT_NE(b, nullptr) << "TLS backend \"" << GetParam() << "\" did not load: " << error;
        crypto_ = &b->crypto();
    }
    const Crypto* crypto_ = nullptr;
};

TEST_P(TlsCrypto, Sha256) {
    EXPECT_EQ(hex(crypto_->sha256(bytes("abc"))),
              "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    EXPECT_EQ(hex(crypto_->sha256({})),
              "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

TEST_P(TlsCrypto, HmacSha256Rfc4231) {
    // Test case 1: key 0x0b x 20, "Hi There".
    const std::vector<std::uint8_t> key1(20, 0x0b);
    EXPECT_EQ(hex(crypto_->hmac_sha256(key1, bytes("Hi There"))),
              "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
    // Test case 2: a key shorter than the block, "Jefe".
    EXPECT_EQ(hex(crypto_->hmac_sha256(bytes("Jefe"), bytes("what do ya want for nothing?"))),
              "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    // Test case 6: a key longer than the block (131 bytes of 0xaa).
    const std::vector<std::uint8_t> key6(131, 0xaa);
    EXPECT_EQ(hex(crypto_->hmac_sha256(
                  key6, bytes("Test Using Larger Than Block-Size Key - Hash Key First"))),
              "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
}

TEST_P(TlsCrypto, Pbkdf2Sha256Rfc7914) {
    std::vector<std::uint8_t> out(64);
    ASSERT_TRUE(crypto_->pbkdf2_sha256(bytes("passwd"), bytes("salt"), 1, out));
    EXPECT_EQ(hex(out),
              "55ac046e56e3089fec1691c22544b605f94185216dde0465e68b9d57c20dacbc"
              "49ca9cccf179b645991664b39d77ef317c71b845b1e30bd509112041d3a19783");
    ASSERT_TRUE(crypto_->pbkdf2_sha256(bytes("Password"), bytes("NaCl"), 80000, out));
    EXPECT_EQ(hex(out),
              "4ddcd8f60b98be21830cee5ef22701f9641a4418d04c0414aeff08876b34ab56"
              "a1d425a1225833549adb841b51c9b3176a272bdebba1d078478f62b397f33c8d");
    // 32 bytes, SCRAM's SaltedPassword size: the first block of the same derivation.
    std::vector<std::uint8_t> block(32);
    ASSERT_TRUE(crypto_->pbkdf2_sha256(bytes("passwd"), bytes("salt"), 1, block));
    EXPECT_EQ(hex(block), "55ac046e56e3089fec1691c22544b605f94185216dde0465e68b9d57c20dacbc");
    // Zero iterations is refused, not quietly run as one.
    EXPECT_FALSE(crypto_->pbkdf2_sha256(bytes("passwd"), bytes("salt"), 0, block));
}

TEST_P(TlsCrypto, ScramSha256Rfc7677) {
    const std::string client_first_bare = "n=user,r=rOprNGfwEbeRWgbNEkqO";
    const std::string server_first =
        "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
    const std::string client_final_without_proof =
        "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
    const std::string auth_message =
        client_first_bare + "," + server_first + "," + client_final_without_proof;
    const std::vector<std::uint8_t> salt = unbase64("W22ZaJ0SNY7soEsUEjb6gQ==");
    ASSERT_EQ(base64(salt), "W22ZaJ0SNY7soEsUEjb6gQ==");  // the helpers agree

    Sha256Digest salted{};
    ASSERT_TRUE(crypto_->pbkdf2_sha256(bytes("pencil"), salt, 4096, salted));
    Sha256Digest client_key = crypto_->hmac_sha256(salted, bytes("Client Key"));
    Sha256Digest stored_key = crypto_->sha256(client_key);
    Sha256Digest client_signature = crypto_->hmac_sha256(stored_key, bytes(auth_message));
    Sha256Digest proof{};
    for (std::size_t i = 0; i < proof.size(); ++i) proof[i] = client_key[i] ^ client_signature[i];
    EXPECT_EQ(base64(proof), "dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=");

    Sha256Digest server_key = crypto_->hmac_sha256(salted, bytes("Server Key"));
    EXPECT_EQ(base64(crypto_->hmac_sha256(server_key, bytes(auth_message))),
              "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=");
}

TEST_P(TlsCrypto, RandomBytes) {
    std::array<std::uint8_t, 32> a{}, b{};
    ASSERT_TRUE(crypto_->random_bytes(a));
    ASSERT_TRUE(crypto_->random_bytes(b));
    EXPECT_NE(a, b);
    EXPECT_NE(a, decltype(a){});
    EXPECT_NE(b, decltype(b){});
    // More than one DRBG request (wolfCrypt: 64 KiB each), nothing left unwritten at the end.
    std::vector<std::uint8_t> big(200'000, 0);
    ASSERT_TRUE(crypto_->random_bytes(big));
    EXPECT_NE(std::vector<std::uint8_t>(big.end() - 32, big.end()), std::vector<std::uint8_t>(32));
    EXPECT_TRUE(crypto_->random_bytes({}));
}

// Both libraries answer alike, for what no published vector covers: an empty key and
// password, a long salt, an output that is not a whole number of blocks.
TEST(TlsCryptoAcrossLibraries, SameAnswers) {
    std::vector<const Crypto*> all;
    for (const std::string& name : compiled_backends()) {
        std::string error;
        Backend* b = load_backend(name, error);
        ASSERT_NE(b, nullptr) << name << ": " << error;
        all.push_back(&b->crypto());
    }
    const std::string long_salt(300, 's');
    for (std::size_t i = 1; i < all.size(); ++i) {
        SCOPED_TRACE(compiled_backends()[i]);
        const Crypto* c = all[i];
        EXPECT_EQ(c->hmac_sha256({}, bytes("data")), all[0]->hmac_sha256({}, bytes("data")));
        std::vector<std::uint8_t> x(45), y(45);
        ASSERT_TRUE(c->pbkdf2_sha256({}, bytes(long_salt), 3, x));
        ASSERT_TRUE(all[0]->pbkdf2_sha256({}, bytes(long_salt), 3, y));
        EXPECT_EQ(x, y);
    }
}

std::string backend_name(const ::testing::TestParamInfo<std::string>& info) {
    return info.param;
}

INSTANTIATE_TEST_SUITE_P(Backends, TlsCrypto, ::testing::ValuesIn(compiled_backends()),
                         backend_name);

}  // namespace
}  // namespace pggw::tls::test
