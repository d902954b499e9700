// SASLprep (RFC 4013) of a password, with PostgreSQL's leniency (src/common/saslprep.c and its
// callers scram_build_secret / libpq's scram_init): the password is prepared when it is valid
// UTF-8 and SASLprep allows it, and used as its raw bytes otherwise. Both PostgreSQL and libpq
// do this, so pggw must too, or a SaltedPassword it computes from a plaintext password would
// differ from PostgreSQL's.
//
//  - pure ASCII: returned unchanged (PostgreSQL's shortcut: no mapping, no prohibition check);
//  - not valid UTF-8 (overlong forms, surrogates, beyond U+10FFFF included): raw bytes;
//  - otherwise libidn's stringprep "SASLprep" profile with unassigned code points refused
//    (PostgreSQL refuses them too: RFC 3454 table A.1), and any failure, or an empty result
//    (PostgreSQL refuses an empty password), gives the raw bytes.
// Known difference, not reachable in practice: PostgreSQL checks prohibited and bidi characters
// on the mapped string before normalization and normalizes with its newer Unicode tables;
// libidn checks after NFKC with Unicode 3.2 (normalization of 3.2 characters is stable).
#pragma once

#include <string>
#include <string_view>

namespace pggw::auth {

std::string saslprep(std::string_view password);

// Whether text is well-formed UTF-8 as PostgreSQL's pg_utf8_islegal sees it.
bool valid_utf8(std::string_view text);

}  // namespace pggw::auth
