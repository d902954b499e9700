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
    // The message types counted: the client's Query, Parse, Sync and FunctionCall (Query, Sync
    // and FunctionCall are each answered with one ReadyForQuery) and the server's
    // ReadyForQuery. Only these: a count per possible type would be 2 KiB per tracker, and
    // every session keeps two for its whole life.
    static constexpr char kCounted[] = {'Q', 'P', 'S', 'F', 'Z'};
    // Messages of a counted type seen so far; 0 for any other type.
    std::uint64_t count(char type) const {
        int k = slot(type);
        return k < 0 ? 0 : counts_[k];
    }

  private:
    std::uint8_t header_[5]{};
    std::size_t header_have_ = 0;
    std::uint32_t body_left_ = 0;
    bool want_status_ = false;  // next body byte is ReadyForQuery's status
    char status_ = 0;
    std::uint64_t messages_ = 0;
    static constexpr int slot(char type) {
        for (int k = 0; k < int(sizeof kCounted); ++k)
            if (kCounted[k] == type) return k;
        return -1;
    }
    std::uint64_t counts_[sizeof kCounted]{};
};

}  // namespace pggw
