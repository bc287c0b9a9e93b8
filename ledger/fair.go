package ledger

// Fair dispatch: who is offered a queue's next batch, and how big it is.
//
// The semaphore race picks the winner among the children an offer goes
// to, and the child that wakes first wins: left alone, the same child
// takes batch after batch (and, with a batch sized by its whole credit, a
// burst of 30 in one go). So the ledger shapes the race without replacing
// it:
//
//   - a batch holds the fair share of what is ready: ceil(ready /
//     consumers with credit), capped by the credit of the consumers it is
//     offered to and by maxOfferBatch; but when every consumer with
//     credit is equally served and what is ready fills all their credit,
//     the batch is what the winner can take: nobody can be short-changed
//     then, since what the winner leaves still fills the others, and the
//     winner's next race waits until they have caught up;
//   - it is offered to the least-served consumers with credit only (each
//     queue counts, per consumer, the messages granted to it), so a child
//     that just won steps back from the next race until the others have
//     caught up; ties race as before.
//
// At low rates (a batch of one message) the offer goes to one of the
// least-served consumers only, preferably one whose child is idle (it
// holds nothing, so it answers at once) and did not win the last batch:
// every child an offer reaches wakes up and races, and all but the winner
// woke for nothing. The token still decides, and the served counts still
// rotate the offers. A larger batch goes to all the least-served, so that
// under load whichever child is free first takes it.
//
// The counts are relative: the least-served consumer with credit is at 0,
// and they are kept within ±maxOfferBatch, so a consumer that subscribes
// late, or had no credit for a while, gets at most a batch or so ahead of
// the others instead of the whole queue until it has caught up.

// fairCap bounds how far apart two consumers' relative counts can be.
const fairCap = maxOfferBatch

// least normalises q's served counts so that the least-served consumer
// with credit is at 0, and returns the number of subscriptions with credit,
// the largest credit of one least-served subscription (what a winner of
// the next offer can take), and whether every subscription with credit is
// least-served (all served alike). The counts are 0 if nobody has credit.
func (q *queue) least() (withCredit, best int, tied bool) {
	low, atLow := 0, 0
	for sub, c := range q.subs {
		credit := sub.prefetch - sub.inflight
		if credit <= 0 {
			continue
		}
		withCredit++
		switch s := q.served[c]; {
		case withCredit == 1 || s < low:
			low, best, atLow = s, credit, 1
		case s == low:
			best = max(best, credit)
			atLow++
		}
	}
	if low != 0 {
		for c, s := range q.served {
			q.served[c] = min(max(s-low, -fairCap), fairCap)
		}
	}
	return withCredit, best, atLow == withCredit
}

// preferred reports whether c is among q's least-served consumers with
// credit, who get its next offer (q.least must have normalised the counts;
// a consumer it has not seen yet counts as least-served).
func (q *queue) preferred(c Consumer) bool { return q.served[c] <= 0 }

// fairBatch is the size of the next batch of q: its share of the ready
// messages for each of the withCredit subscriptions with credit, at most
// best (what one winner can take) and maxOfferBatch, at least one. When
// the subscriptions with credit are tied (all served alike) and the ready
// messages fill all their credit (total), the share does not apply: the
// batch is what the winner can take, so a consumer whose credit came back
// in full is not fed in halves.
func fairBatch(ready, withCredit, best, total int, tied bool) int {
	share := (ready + withCredit - 1) / max(withCredit, 1)
	if tied && ready >= total {
		share = ready
	}
	return max(1, min(share, best, maxOfferBatch))
}

// servedBy notes that c was granted n messages of q.
func (q *queue) servedBy(c Consumer, n int) {
	if n > 0 {
		q.served[c] = min(q.served[c]+n, fairCap)
	}
}

// pickOne returns the consumer of eligible a one-message offer goes to,
// or nil if eligible has fewer than two consumers (nothing to save). It
// prefers one whose subscriptions to q hold nothing (its child is idle and
// answers at once), then one that did not win q's last batch.
func (q *queue) pickOne(eligible []Consumer) Consumer {
	if len(eligible) < 2 {
		return nil
	}
	var pick Consumer
	best := -1
	for _, c := range eligible {
		score := 0
		if q.idle(c) {
			score += 2
		}
		if c != q.lastWinner {
			score++
		}
		if score > best {
			pick, best = c, score
		}
	}
	return pick
}

// idle reports whether none of c's subscriptions to q holds a message.
func (q *queue) idle(c Consumer) bool {
	for sub, o := range q.subs {
		if o == c && sub.inflight > 0 {
			return false
		}
	}
	return true
}
