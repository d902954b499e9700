// Follows message boundaries (type byte + int32 length) in the server-to-client stream without
// copying it, and remembers the transaction status of the last ReadyForQuery. It lets later
// work (drain on SIGTERM, idle timeouts) speak to the client only between messages, and only
// when no transaction is open.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

namespace pggw {

class MessageTracker {
  public:
    // Consumes relayed bytes. Returns false when the stream is out of sync (a length below 4).
    // The relay passes the bytes on unchanged either way and does not look at the result (a
    // PostgreSQL server never sends such a length); after it the counts are not to be
    // trusted, so a drain may wait for its timeout.
    bool feed(std::span<const std::uint8_t> bytes);

    // True when the bytes fed so far end exactly on a message boundary.
    bool at_boundary() const { return header_have_ == 0 && body_left_ == 0; }
    // 'I' idle, 'T' in a transaction block, 'E' in a failed transaction; 0 before the first
    // ReadyForQuery.
    char transaction_status() const { return status_; }
    // Idle between messages: the only state in which pggw may inject its own message.
    bool idle() const { return at_boundary() && status_ == 'I'; }
    std::uint64_t messages() const { return messages_; }
    // Messages of one type seen so far (e.g. 'Z' from the server; 'Q', 'S' and 'F' from the
    // client, each of which the server answers with one ReadyForQuery).
    std::uint64_t count(char type) const { return counts_[std::uint8_t(type)]; }

  private:
    std::uint8_t header_[5]{};
    std::size_t header_have_ = 0;
    std::uint32_t body_left_ = 0;
    bool want_status_ = false;  // next body byte is ReadyForQuery's status
    char status_ = 0;
    std::uint64_t messages_ = 0;
    std::uint64_t counts_[256]{};
};

}  // namespace pggw
