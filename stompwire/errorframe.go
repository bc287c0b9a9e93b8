package stompwire

import (
	"strconv"

	"github.com/go-stomp/stomp/v3/frame"
)

// ErrorFrame builds the ERROR frame a broker sends before it closes a
// connection: message in the message header (what clients show), receiptID
// (if not "") in receipt-id, and detail (message if "") as a text/plain body
// with its content-length.
func ErrorFrame(message, receiptID, detail string) *frame.Frame {
	f := frame.New(frame.ERROR, frame.Message, message, frame.ContentType, "text/plain")
	if receiptID != "" {
		f.Header.Add(frame.ReceiptId, receiptID)
	}
	if detail == "" {
		detail = message
	}
	f.Body = []byte(detail + "\n")
	f.Header.Add(frame.ContentLength, strconv.Itoa(len(f.Body)))
	return f
}
