#include "gateway/net/tls_context.hpp"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string_view>

#include "gateway/core/ascii.hpp"
#include "gateway/net/tls_stream.hpp"

namespace gateway::net {

namespace {

// Forward-secret AEAD suites for TLS 1.2 (Mozilla's "intermediate"
// profile).
constexpr const char* tls12_ciphers =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
    "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";
constexpr const char* groups = "X25519:P-256:P-384";
constexpr std::size_t max_pem_file = 1024 * 1024;

std::string openssl_reason() {
  const unsigned long e = ERR_peek_last_error();
  std::string out;
  if (e != 0) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    out = buf;
  }
  ERR_clear_error();
  return out.empty() ? std::string("unknown OpenSSL error") : out;
}

int ticket_keys_index() {
  static const int index = SSL_CTX_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return index;
}

int on_ticket(SSL* ssl, unsigned char* key_name, unsigned char* iv, EVP_CIPHER_CTX* cipher, EVP_MAC_CTX* mac,
              int enc) {
  auto* keys = static_cast<tls_ticket_keys*>(SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), ticket_keys_index()));
  return keys ? keys->on_ticket(key_name, iv, cipher, mac, enc) : -1;
}

// ALPN (RFC 7301): http/1.1 when the client offers it; a client that offers
// only other protocols (h2 alone) gets no ALPN answer and may go on or leave.
int on_alpn(SSL*, const unsigned char** out, unsigned char* out_len, const unsigned char* in, unsigned int in_len,
            void*) {
  static const unsigned char http11[] = {8, 'h', 't', 't', 'p', '/', '1', '.', '1'};
  unsigned char* chosen = nullptr;
  if (SSL_select_next_proto(&chosen, out_len, http11, sizeof http11, in, in_len) == OPENSSL_NPN_NEGOTIATED) {
    *out = chosen;
    return SSL_TLSEXT_ERR_OK;
  }
  return SSL_TLSEXT_ERR_NOACK;
}

// SNI (RFC 6066 section 3): switch to the certificate for the name asked.
int on_server_name(SSL* ssl, int*, void* arg) {
  const char* name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
  if (name == nullptr) return SSL_TLSEXT_ERR_OK;
  SSL_CTX* ctx = static_cast<const tls_context*>(arg)->context_for(name);
  if (ctx != SSL_get_SSL_CTX(ssl)) SSL_set_SSL_CTX(ssl, ctx);
  return SSL_TLSEXT_ERR_OK;
}

// A passphrase-protected key is refused instead of prompting on a terminal.
int no_passphrase(char*, int, int, void*) { return 0; }

SSL_CTX* make_ctx(tls_ticket_keys* keys) {
  SSL_CTX* ctx = SSL_CTX_new(TLS_server_method());
  if (ctx == nullptr) throw tls_error("TLS: cannot create a context: " + openssl_reason());
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION);
  SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION | SSL_OP_CIPHER_SERVER_PREFERENCE |
                               SSL_OP_IGNORE_UNEXPECTED_EOF);
  // Record buffers are freed whenever they are empty: an idle connection
  // holds no 16 KiB read or write buffer (a busy worker takes them back
  // from its tls_buffer_cache instead of malloc).
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
  // No read-ahead: OpenSSL asks its input (net/tls_stream.cpp) for a record
  // header and then exactly its body, which sizes the stream's receives;
  // the stream's input buffer already takes what the socket has in one
  // receive.
  SSL_CTX_set_read_ahead(ctx, 0);
  if (SSL_CTX_set_cipher_list(ctx, tls12_ciphers) != 1 || SSL_CTX_set_ciphersuites(ctx, tls13_suites) != 1 ||
      SSL_CTX_set1_groups_list(ctx, groups) != 1) {
    SSL_CTX_free(ctx);
    throw tls_error("TLS: cipher or group list refused: " + openssl_reason());
  }
  // Resumption by ticket only (stateless: nothing per client is kept).
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  static const unsigned char id_context[] = "gateway";
  SSL_CTX_set_session_id_context(ctx, id_context, sizeof id_context - 1);
  SSL_CTX_set_num_tickets(ctx, 1);
  const auto lifetime = std::chrono::duration_cast<std::chrono::seconds>(keys->rotation()).count();
  SSL_CTX_set_timeout(ctx, static_cast<long>(std::max<long long>(lifetime, 1)));
  SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, on_ticket);
  SSL_CTX_set_ex_data(ctx, ticket_keys_index(), keys);
  SSL_CTX_set_alpn_select_cb(ctx, on_alpn, nullptr);
  return ctx;
}

std::string read_file(const std::string& path, std::string_view flag) {
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> f(std::fopen(path.c_str(), "rb"), &std::fclose);
  if (!f) throw tls_error(std::string(flag) + " " + path + ": cannot open: " + std::strerror(errno));
  std::string text;
  char buf[16384];
  std::size_t n = 0;
  while ((n = std::fread(buf, 1, sizeof buf, f.get())) > 0) {
    text.append(buf, n);
    if (text.size() > max_pem_file) throw tls_error(std::string(flag) + " " + path + ": larger than 1 MiB");
  }
  if (std::ferror(f.get())) throw tls_error(std::string(flag) + " " + path + ": cannot read: " + std::strerror(errno));
  return text;
}

using bio_ptr = std::unique_ptr<BIO, decltype(&BIO_free)>;
using x509_ptr = std::unique_ptr<X509, decltype(&X509_free)>;
using pkey_ptr = std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)>;

bio_ptr memory_bio(const std::string& text) {
  return bio_ptr(BIO_new_mem_buf(text.data(), static_cast<int>(text.size())), &BIO_free);
}

// The DNS names a certificate is for: subjectAltName's, else the CN.
std::vector<std::string> certificate_names(X509* x) {
  std::vector<std::string> names;
  auto* sans = static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(x, NID_subject_alt_name, nullptr, nullptr));
  if (sans != nullptr) {
    for (int i = 0; i < sk_GENERAL_NAME_num(sans); ++i) {
      const GENERAL_NAME* g = sk_GENERAL_NAME_value(sans, i);
      if (g->type != GEN_DNS) continue;
      const auto* p = reinterpret_cast<const char*>(ASN1_STRING_get0_data(g->d.dNSName));
      names.emplace_back(p, static_cast<std::size_t>(ASN1_STRING_length(g->d.dNSName)));
    }
    GENERAL_NAMES_free(sans);
  }
  if (names.empty()) {
    char cn[256];
    const int n = X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, cn, sizeof cn);
    if (n > 0) names.emplace_back(cn, static_cast<std::size_t>(n));
  }
  return names;
}

// "*.example.com" covers exactly one more label (RFC 6125 section 6.4.3):
// true when `pattern` is such a wildcard and `suffix` (the name from its
// first dot on, ".example.com") is the part after its '*'.
bool wildcard_covers(std::string_view pattern, std::string_view suffix) noexcept {
  return pattern.size() > 2 && pattern[0] == '*' && pattern[1] == '.' &&
         core::iequals_ascii(pattern.substr(1), suffix);
}

// The bytes of `size` a memory BIO over them has read so far.
std::size_t consumed(BIO* bio, std::size_t size) {
  char* rest = nullptr;
  const long left = BIO_get_mem_data(bio, &rest);
  return size - static_cast<std::size_t>(left < 0 ? 0 : left);
}

// True when `tail` (what follows the last certificate read) holds a PEM
// boundary that is not part of a whole block "-----BEGIN X-----" ...
// "-----END X-----". OpenSSL reads a file cut inside a block's first line
// ("-----BEGIN CERTIF") as "no start line", the same as a clean end; whole
// blocks of other kinds (a private key kept in the same file) are fine.
bool has_partial_pem_block(std::string_view tail) {
  constexpr std::string_view dashes = "-----";
  constexpr std::string_view begin = "-----BEGIN ";
  std::size_t at = 0;
  for (;;) {
    const std::size_t start = tail.find(dashes, at);
    if (start == std::string_view::npos) return false;
    if (tail.substr(start, begin.size()) != begin) return true;
    const std::size_t label_from = start + begin.size();
    const std::size_t label_end = tail.find(dashes, label_from);
    if (label_end == std::string_view::npos) return true;
    const std::string_view label = tail.substr(label_from, label_end - label_from);
    if (label.find('\n') != std::string_view::npos) return true;
    const std::string end_line = "-----END " + std::string(label) + "-----";
    const std::size_t end = tail.find(end_line, label_end + dashes.size());
    if (end == std::string_view::npos) return true;
    at = end + end_line.size();
  }
}

// Loads one pair into `ctx`; `cert_label`/`key_label` name the source in errors.
void use_pair(SSL_CTX* ctx, const std::string& cert_pem, const std::string& key_pem, const std::string& cert_label,
              const std::string& key_label) {
  auto cbio = memory_bio(cert_pem);
  x509_ptr leaf(PEM_read_bio_X509_AUX(cbio.get(), nullptr, no_passphrase, nullptr), &X509_free);
  if (!leaf) {
    ERR_clear_error();
    throw tls_error(cert_label + ": no PEM certificate in it");
  }
  if (SSL_CTX_use_certificate(ctx, leaf.get()) != 1)
    throw tls_error(cert_label + ": certificate refused: " + openssl_reason());
  // The rest of the file: the chain up to (not including) the root. Only
  // "no start line" (no further certificate) ends it; a block that does
  // not decode refuses the whole file, since the leaf alone would fail
  // every client that needs the intermediates.
  ERR_clear_error();
  int count = 1;
  std::size_t from = consumed(cbio.get(), cert_pem.size());
  while (X509* extra = PEM_read_bio_X509(cbio.get(), nullptr, no_passphrase, nullptr)) {
    ++count;
    if (SSL_CTX_add0_chain_cert(ctx, extra) != 1) {
      X509_free(extra);
      throw tls_error(cert_label + ": chain certificate refused: " + openssl_reason());
    }
    from = consumed(cbio.get(), cert_pem.size());
  }
  const unsigned long end = ERR_peek_last_error();
  if (end != 0 && (ERR_GET_LIB(end) != ERR_LIB_PEM || ERR_GET_REASON(end) != PEM_R_NO_START_LINE))
    throw tls_error(cert_label + ": certificate " + std::to_string(count + 1) +
                    " in the file is cut short or damaged: " + openssl_reason());
  ERR_clear_error();
  if (has_partial_pem_block(std::string_view(cert_pem).substr(from)))
    throw tls_error(cert_label + ": certificate " + std::to_string(count + 1) +
                    " in the file is cut short or damaged: a PEM block without its end");
  auto kbio = memory_bio(key_pem);
  pkey_ptr key(PEM_read_bio_PrivateKey(kbio.get(), nullptr, no_passphrase, nullptr), &EVP_PKEY_free);
  if (!key) {
    ERR_clear_error();
    throw tls_error(key_label + ": no PEM private key in it (a passphrase-protected key is not supported)");
  }
  if (X509_check_private_key(leaf.get(), key.get()) != 1) {
    ERR_clear_error();
    throw tls_error(key_label + " does not match the certificate in " + cert_label);
  }
  if (SSL_CTX_use_PrivateKey(ctx, key.get()) != 1 || SSL_CTX_check_private_key(ctx) != 1)
    throw tls_error(key_label + ": key refused: " + openssl_reason());
}

}  // namespace

// --- tls_ticket_keys ---

tls_ticket_keys::tls_ticket_keys(std::chrono::nanoseconds rotation)
    : rotation_(rotation), current_(make_key()), current_since_(std::chrono::steady_clock::now()) {
  aes_ = EVP_CIPHER_fetch(nullptr, "AES-256-CBC", nullptr);
  if (aes_ == nullptr) throw tls_error("TLS: no AES-256-CBC for session tickets: " + openssl_reason());
}

tls_ticket_keys::~tls_ticket_keys() { EVP_CIPHER_free(aes_); }

tls_ticket_keys::key tls_ticket_keys::make_key() {
  key k{};
  if (RAND_bytes(k.name, sizeof k.name) != 1 || RAND_bytes(k.aes, sizeof k.aes) != 1 ||
      RAND_bytes(k.hmac, sizeof k.hmac) != 1)
    throw tls_error("TLS: no random bytes for a session ticket key: " + openssl_reason());
  return k;
}

void tls_ticket_keys::rotate_if_due(std::chrono::steady_clock::time_point now) {
  if (now - current_since_ < rotation_) return;
  key next{};
  try {
    next = make_key();
  } catch (const tls_error&) {
    return;  // keep the current key until random bytes come back
  }
  // A current key older than two periods has no ticket left worth keeping.
  has_previous_ = now - current_since_ < 2 * rotation_;
  previous_ = current_;
  current_ = next;
  current_since_ = now;
}

void tls_ticket_keys::rotate_for_test() {
  std::lock_guard lock(mu_);
  current_since_ -= rotation_;
  rotate_if_due(std::chrono::steady_clock::now());
}

int tls_ticket_keys::on_ticket(unsigned char* key_name, unsigned char* iv, EVP_CIPHER_CTX* cipher, EVP_MAC_CTX* mac,
                               int enc) {
  key k{};
  int result = 1;
  {
    std::lock_guard lock(mu_);
    rotate_if_due(std::chrono::steady_clock::now());
    if (enc == 1) {
      k = current_;
    } else if (std::memcmp(key_name, current_.name, sizeof current_.name) == 0) {
      k = current_;
    } else if (has_previous_ && std::memcmp(key_name, previous_.name, sizeof previous_.name) == 0) {
      k = previous_;
      result = 2;  // valid, but issue a ticket under the current key
    } else {
      return 0;  // unknown or retired key: a full handshake
    }
  }
  OSSL_PARAM params[3];
  char digest[] = "SHA256";
  params[0] = OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, k.hmac, sizeof k.hmac);
  params[1] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0);
  params[2] = OSSL_PARAM_construct_end();
  if (enc == 1) {
    std::memcpy(key_name, k.name, sizeof k.name);
    if (RAND_bytes(iv, 16) != 1) return -1;
    if (EVP_EncryptInit_ex(cipher, aes_, nullptr, k.aes, iv) != 1) return -1;
  } else {
    if (EVP_DecryptInit_ex(cipher, aes_, nullptr, k.aes, iv) != 1) return -1;
  }
  if (EVP_MAC_CTX_set_params(mac, params) != 1) return -1;
  return result;
}

// --- tls_context ---

tls_context::~tls_context() {
  for (auto& e : entries_) SSL_CTX_free(e.ctx);
}

void tls_context::add(SSL_CTX* ctx, std::string source) {
  entry e;
  e.ctx = ctx;
  e.source = std::move(source);
  if (X509* leaf = SSL_CTX_get0_certificate(ctx)) e.names = certificate_names(leaf);
  entries_.push_back(std::move(e));
  // The first context's callback runs for every handshake (an SSL starts on it).
  if (entries_.size() == 1) {
    SSL_CTX_set_tlsext_servername_callback(entries_.front().ctx, on_server_name);
    SSL_CTX_set_tlsext_servername_arg(entries_.front().ctx, this);
  }
}

std::shared_ptr<const tls_context> tls_context::from_files(const std::vector<tls_cert_files>& pairs,
                                                           std::shared_ptr<tls_ticket_keys> keys) {
  std::shared_ptr<tls_context> c(new tls_context());
  c->keys_ = std::move(keys);
  for (const auto& p : pairs) {
    const std::string cert_pem = read_file(p.cert, "--tls-cert");
    const std::string key_pem = read_file(p.key, "--tls-key");
    SSL_CTX* ctx = make_ctx(c->keys_.get());
    try {
      use_pair(ctx, cert_pem, key_pem, "--tls-cert " + p.cert, "--tls-key " + p.key);
    } catch (...) {
      SSL_CTX_free(ctx);
      throw;
    }
    c->add(ctx, p.cert);
  }
  if (c->entries_.empty()) throw tls_error("--tls-cert: no certificate given");
  return c;
}

std::shared_ptr<const tls_context> tls_context::from_pem(const std::string& cert_pem, const std::string& key_pem,
                                                         std::shared_ptr<tls_ticket_keys> keys) {
  std::shared_ptr<tls_context> c(new tls_context());
  c->keys_ = std::move(keys);
  SSL_CTX* ctx = make_ctx(c->keys_.get());
  try {
    use_pair(ctx, cert_pem, key_pem, "--tls self-signed certificate", "--tls self-signed key");
  } catch (...) {
    SSL_CTX_free(ctx);
    throw;
  }
  c->add(ctx, "self-signed");
  return c;
}

SSL* tls_context::new_ssl() const noexcept {
  SSL* ssl = SSL_new(entries_.front().ctx);
  if (ssl == nullptr) ERR_clear_error();
  return ssl;
}

SSL_CTX* tls_context::context_for(std::string_view server_name) const noexcept {
  // One pair is the default whatever the name.
  if (entries_.size() == 1) return entries_.front().ctx;
  // An exact name in any pair wins over a wildcard listed before it (as
  // nginx and HAProxy choose); then the first wildcard that covers the
  // name; then the default. Comparisons only: nothing is allocated.
  for (const auto& e : entries_)
    for (const auto& n : e.names)
      if (core::iequals_ascii(n, server_name)) return e.ctx;
  const auto dot = server_name.find('.');
  if (dot != std::string_view::npos && dot > 0) {
    const std::string_view suffix = server_name.substr(dot);
    for (const auto& e : entries_)
      for (const auto& n : e.names)
        if (wildcard_covers(n, suffix)) return e.ctx;
  }
  return entries_.front().ctx;
}

std::string tls_context::describe() const {
  std::string s;
  for (std::size_t i = 0; i < entries_.size(); ++i) {
    if (i) s += "; ";
    for (std::size_t j = 0; j < entries_[i].names.size(); ++j) s += (j ? ", " : "") + entries_[i].names[j];
    if (entries_[i].names.empty()) s += "(no DNS name)";
    s += " (" + entries_[i].source + (i == 0 ? ", default)" : ")");
  }
  return s;
}

// --- tls_terminator ---

bool tls_terminator::wanted(const core::config& cfg) noexcept {
  return !cfg.tls_certs.empty() || !cfg.tls_keys.empty() || cfg.tls_mode == "self-signed";
}

tls_terminator::tls_terminator(const core::config& cfg)
    : keys_(std::make_shared<tls_ticket_keys>(cfg.tls_ticket_rotation)) {
  if (cfg.tls_mode == "self-signed") {
    if (!cfg.tls_certs.empty() || !cfg.tls_keys.empty())
      throw tls_error("--tls self-signed: not together with --tls-cert/--tls-key");
    self_signed_ = true;
    const self_signed_pem made = make_self_signed();
    current_.store(tls_context::from_pem(made.cert, made.key, keys_));
    fingerprint_ = made.fingerprint;
    const bool chosen = !cfg.tls_self_signed_pem.empty();
    const std::string path = chosen ? cfg.tls_self_signed_pem : default_self_signed_pem_path();
    // Written to a new file renamed over the old one, so a reader never
    // sees half of it.
    const std::string tmp = path + ".tmp";
    std::FILE* f = std::fopen(tmp.c_str(), "wb");
    bool ok = f != nullptr && std::fwrite(made.cert.data(), 1, made.cert.size(), f) == made.cert.size();
    if (f != nullptr) ok = std::fclose(f) == 0 && ok;
    if (ok) ok = std::rename(tmp.c_str(), path.c_str()) == 0;
    if (!ok) {
      const std::string why = path + ": cannot write the certificate: " + std::strerror(errno);
      std::remove(tmp.c_str());
      if (chosen) throw tls_error("--tls-self-signed-pem " + why);
      warning_ = why + " (choose a file with --tls-self-signed-pem)";
    } else {
      pem_path_ = path;
    }
    return;
  }
  current_.store(prepare(cfg));
}

std::shared_ptr<const tls_context> tls_terminator::prepare(const core::config& cfg) const {
  if (self_signed_) return current_.load();
  if (cfg.tls_certs.size() != cfg.tls_keys.size())
    throw tls_error(std::string(cfg.tls_certs.size() < cfg.tls_keys.size() ? "--tls-key" : "--tls-cert") +
                    ": --tls-cert and --tls-key come in pairs (" + std::to_string(cfg.tls_certs.size()) +
                    " certificates, " + std::to_string(cfg.tls_keys.size()) + " keys)");
  std::vector<tls_cert_files> pairs;
  for (std::size_t i = 0; i < cfg.tls_certs.size(); ++i) pairs.push_back({cfg.tls_certs[i], cfg.tls_keys[i]});
  return tls_context::from_files(pairs, keys_);
}

void tls_terminator::install(std::shared_ptr<const tls_context> next) noexcept { current_.store(std::move(next)); }

std::unique_ptr<tls_stream> tls_terminator::open(asio::ip::tcp::socket& socket) const {
  auto ctx = current_.load();
  SSL* ssl = ctx->new_ssl();
  if (ssl == nullptr) return nullptr;
  return std::make_unique<tls_stream>(socket, ssl, std::move(ctx));
}

// --- --tls self-signed ---

std::string default_self_signed_pem_path() {
  const char* dir = std::getenv("TMPDIR");
  std::string d = dir != nullptr && *dir != '\0' ? dir : "/tmp";
  if (d.back() == '/') d.pop_back();
  return d + "/gateway-localhost.pem";
}

self_signed_pem make_self_signed() {
  auto fail = [](const char* what) { return tls_error(std::string("--tls self-signed: ") + what + ": " + openssl_reason()); };
  pkey_ptr key(EVP_EC_gen("P-256"), &EVP_PKEY_free);
  if (!key) throw fail("cannot make a P-256 key");
  x509_ptr x(X509_new(), &X509_free);
  if (!x) throw fail("cannot make a certificate");
  X509_set_version(x.get(), 2);
  {
    std::unique_ptr<BIGNUM, decltype(&BN_free)> serial(BN_new(), &BN_free);
    if (!serial || BN_rand(serial.get(), 127, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) != 1 ||
        BN_to_ASN1_INTEGER(serial.get(), X509_get_serialNumber(x.get())) == nullptr)
      throw fail("cannot make a serial number");
  }
  X509_gmtime_adj(X509_getm_notBefore(x.get()), -3600);
  X509_gmtime_adj(X509_getm_notAfter(x.get()), 30L * 24 * 3600);
  X509_set_pubkey(x.get(), key.get());
  X509_NAME* name = X509_get_subject_name(x.get());
  X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, reinterpret_cast<const unsigned char*>("gateway development"), -1, -1, 0);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>("localhost"), -1, -1, 0);
  X509_set_issuer_name(x.get(), name);
  X509V3_CTX v3;
  X509V3_set_ctx_nodb(&v3);
  X509V3_set_ctx(&v3, x.get(), x.get(), nullptr, nullptr, 0);
  const std::pair<int, const char*> extensions[] = {
      {NID_subject_alt_name, "DNS:localhost,IP:127.0.0.1,IP:::1"},
      {NID_basic_constraints, "critical,CA:FALSE"},
      {NID_key_usage, "critical,digitalSignature"},
      {NID_ext_key_usage, "serverAuth"},
      {NID_subject_key_identifier, "hash"},
  };
  for (const auto& [nid, value] : extensions) {
    X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &v3, nid, value);
    if (ext == nullptr) throw fail("cannot add an extension");
    const int added = X509_add_ext(x.get(), ext, -1);
    X509_EXTENSION_free(ext);
    if (added != 1) throw fail("cannot add an extension");
  }
  if (X509_sign(x.get(), key.get(), EVP_sha256()) == 0) throw fail("cannot sign the certificate");

  self_signed_pem out;
  auto to_text = [&](auto write) {
    bio_ptr b(BIO_new(BIO_s_mem()), &BIO_free);
    if (!b || write(b.get()) != 1) throw fail("cannot write PEM");
    char* data = nullptr;
    const long n = BIO_get_mem_data(b.get(), &data);
    return std::string(data, static_cast<std::size_t>(n));
  };
  out.cert = to_text([&](BIO* b) { return PEM_write_bio_X509(b, x.get()); });
  out.key = to_text([&](BIO* b) {
    return PEM_write_bio_PrivateKey(b, key.get(), nullptr, nullptr, 0, nullptr, nullptr);
  });
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int md_len = 0;
  if (X509_digest(x.get(), EVP_sha256(), md, &md_len) != 1) throw fail("cannot hash the certificate");
  static constexpr char hex[] = "0123456789ABCDEF";
  for (unsigned int i = 0; i < md_len; ++i) {
    if (i) out.fingerprint.push_back(':');
    out.fingerprint.push_back(hex[md[i] >> 4]);
    out.fingerprint.push_back(hex[md[i] & 15]);
  }
  return out;
}

}  // namespace gateway::net
