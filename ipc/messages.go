package ipc

import (
	"encoding/json"
	"fmt"
)

// Claim is the body of a KindClaim record: a child won slot's token while
// it was offered at generation Gen (the batch whose first message is
// MessageID), and wants to deliver the first Count messages of that batch
// to its subscription SubID. Count 0 means the whole batch.
type Claim struct {
	Slot      int
	Gen       uint64
	SubID     string
	MessageID string
	Count     int
}

// AppendClaim appends a KindClaim record.
func AppendClaim(dst []byte, c Claim) []byte {
	dst, mark := BeginRecord(dst, KindClaim)
	dst = AppendUint(dst, uint64(c.Slot))
	dst = AppendUint(dst, c.Gen)
	dst = AppendString(dst, c.SubID)
	dst = AppendString(dst, c.MessageID)
	dst = AppendUint(dst, uint64(c.Count))
	return FinishRecord(dst, mark)
}

// DecodeClaim decodes a KindClaim body.
func DecodeClaim(body []byte) (Claim, error) {
	r := NewBodyReader(body)
	c := Claim{Slot: int(r.Uint()), Gen: r.Uint(), SubID: r.String(), MessageID: r.String(), Count: r.Int()}
	if err := r.Done(); err != nil {
		return Claim{}, fmt.Errorf("claim: %w", err)
	}
	return c, nil
}

// Offer is the body of a KindOffer record: a batch of Count messages of
// queue Destination, the first of which is MessageID, sits in semaphore
// slot Slot, armed at generation Gen. One token stands for the whole batch:
// its winner may claim up to Count of them with one CLAIM. (Count 0 in a
// decoded record from an older encoder means 1.)
type Offer struct {
	Slot        int
	Gen         uint64
	Destination string
	MessageID   string
	Count       int
}

// AppendOffer appends a KindOffer record.
func AppendOffer(dst []byte, o Offer) []byte {
	dst, mark := BeginRecord(dst, KindOffer)
	dst = AppendUint(dst, uint64(o.Slot))
	dst = AppendUint(dst, o.Gen)
	dst = AppendString(dst, o.Destination)
	dst = AppendString(dst, o.MessageID)
	dst = AppendUint(dst, uint64(max(o.Count, 1)))
	return FinishRecord(dst, mark)
}

// DecodeOffer decodes a KindOffer body.
func DecodeOffer(body []byte) (Offer, error) {
	r := NewBodyReader(body)
	o := Offer{Slot: int(r.Uint()), Gen: r.Uint(), Destination: r.String(), MessageID: r.String(), Count: r.Int()}
	if err := r.Done(); err != nil {
		return Offer{}, fmt.Errorf("offer: %w", err)
	}
	o.Count = max(o.Count, 1)
	return o, nil
}

// AppendMessage appends a record that carries a STOMP MESSAGE: KindGrant
// (key = the child's subscription key) or KindDeliver (key = the topic
// destination), the message id, and the frame already encoded in STOMP 1.2
// wire form, starting with "MESSAGE\n".
func AppendMessage(dst []byte, k Kind, key, messageID string, encodedFrame []byte) []byte {
	dst, mark := BeginRecord(dst, k)
	dst = AppendString(dst, key)
	dst = AppendString(dst, messageID)
	dst = append(dst, encodedFrame...)
	return FinishRecord(dst, mark)
}

// DecodeMessage splits a KindGrant or KindDeliver body. encodedFrame
// aliases body.
func DecodeMessage(body []byte) (key, messageID string, encodedFrame []byte, err error) {
	r := NewBodyReader(body)
	key, messageID = r.String(), r.String()
	encodedFrame = r.Rest()
	if err := r.Err(); err != nil {
		return "", "", nil, fmt.Errorf("message: %w", err)
	}
	return key, messageID, encodedFrame, nil
}

// AppendDeny appends a KindDeny record: count messages the child claimed
// for its subscription subID (the claim named messageID) will not come.
// A claim that lost gets one DENY for all it asked; a claim that won gets
// a GRANT per message granted and, if that is fewer than it asked for, a
// DENY for the rest.
func AppendDeny(dst []byte, subID, messageID string, count int) []byte {
	dst, mark := BeginRecord(dst, KindDeny)
	dst = AppendString(dst, subID)
	dst = AppendString(dst, messageID)
	dst = AppendUint(dst, uint64(max(count, 1)))
	return FinishRecord(dst, mark)
}

// AppendRevoke appends a KindRevoke record.
func AppendRevoke(dst []byte, subID, messageID string) []byte {
	dst, mark := BeginRecord(dst, KindRevoke)
	dst = AppendString(dst, subID)
	dst = AppendString(dst, messageID)
	return FinishRecord(dst, mark)
}

// DecodeDeny decodes a KindDeny or KindRevoke body, without a DENY's count.
func DecodeDeny(body []byte) (subID, messageID string, err error) {
	subID, messageID, _, err = DecodeDenyCount(body)
	return subID, messageID, err
}

// DecodeDenyCount decodes a KindDeny or KindRevoke body; count is the
// DENY's count of messages that will not come (1 for a REVOKE).
func DecodeDenyCount(body []byte) (subID, messageID string, count int, err error) {
	r := NewBodyReader(body)
	subID, messageID = r.String(), r.String()
	count = 1
	if r.Err() == nil && len(r.b) > 0 {
		count = max(r.Int(), 1)
	}
	if err := r.Done(); err != nil {
		return "", "", 0, fmt.Errorf("deny: %w", err)
	}
	return subID, messageID, count, nil
}

// SyncedCoalesced is a KindSynced flag: the last SEND before the SYNC was
// not stored because a message with the same uniqkey is still pending; the
// child says so in the RECEIPT.
const SyncedCoalesced = 1

// AppendSynced appends a KindSynced record: token, then flags.
func AppendSynced(dst []byte, token uint64, flags uint64) []byte {
	dst, mark := BeginRecord(dst, KindSynced)
	dst = AppendUint(dst, token)
	dst = AppendUint(dst, flags)
	return FinishRecord(dst, mark)
}

// DecodeSynced decodes a KindSynced body.
func DecodeSynced(body []byte) (token, flags uint64, err error) {
	r := NewBodyReader(body)
	token, flags = r.Uint(), r.Uint()
	if err := r.Done(); err != nil {
		return 0, 0, fmt.Errorf("synced: %w", err)
	}
	return token, flags, nil
}

// AppendToken appends a KindSync record.
func AppendToken(dst []byte, k Kind, token uint64) []byte {
	dst, mark := BeginRecord(dst, k)
	dst = AppendUint(dst, token)
	return FinishRecord(dst, mark)
}

// DecodeToken decodes a KindSync body.
func DecodeToken(body []byte) (uint64, error) {
	r := NewBodyReader(body)
	t := r.Uint()
	if err := r.Done(); err != nil {
		return 0, fmt.Errorf("sync token: %w", err)
	}
	return t, nil
}

// AppendText appends a record whose body is one string: KindAck and
// KindNack (a message id), KindShutdown (a reason).
func AppendText(dst []byte, k Kind, s string) []byte {
	dst, mark := BeginRecord(dst, k)
	dst = append(dst, s...)
	return FinishRecord(dst, mark)
}

// SessionInfo is the body of KindHello: what the parent shows operators
// about a client (`stomp-broker clients`).
type SessionInfo struct {
	Addr    string `json:"addr"`
	Login   string `json:"login,omitempty"`
	Version string `json:"version"`
}

// AppendHello appends a KindHello record.
func AppendHello(dst []byte, info SessionInfo) []byte {
	b, _ := json.Marshal(info) // a struct of strings always marshals
	return AppendRecord(dst, KindHello, b)
}

// DecodeHello decodes a KindHello body.
func DecodeHello(body []byte) (SessionInfo, error) {
	var info SessionInfo
	if err := json.Unmarshal(body, &info); err != nil {
		return SessionInfo{}, fmt.Errorf("%w: hello: %v", ErrMalformed, err)
	}
	return info, nil
}
