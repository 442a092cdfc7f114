package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/restic-monitor/restic-monitor/events"
	"github.com/restic-monitor/restic-monitor/internal/domain"
)

// A notification channel lives in the tenant's partition; everything the notifier keeps for it
// (its delivery log, the events it has sent, its failure streaks, its pending email
// confirmations) lives in the channel's own partition, which deleting the channel or the
// tenant empties.

type channelItem struct {
	key
	Entity string `json:"entity"`
	domain.Channel
	// Sealed is the channel's secret, encrypted by the caller (package notify): a webhook's
	// signing secret or a Slack webhook URL. The store never sees it in the clear.
	Sealed string `json:"sealed,omitempty"`
}

// DeliveryRetention is how long a channel's delivery log keeps a record.
const DeliveryRetention = 30 * 24 * time.Hour

// SentEventRetention is how long a channel remembers an event it sent, so a redelivered event
// is not sent twice. EventBridge retries for at most a day.
const SentEventRetention = 2 * 24 * time.Hour

// CreateChannel stores a new channel with its sealed secret. The caller gives it its ID.
func (s *Store) CreateChannel(ctx context.Context, tenantID string, c domain.Channel, sealed string) (domain.Channel, error) {
	c.TenantID = tenantID
	if !domain.ValidID(c.ID) {
		return domain.Channel{}, fmt.Errorf("create channel: %q is not an ID", c.ID)
	}
	if err := c.Validate(events.TypeNames()); err != nil {
		return domain.Channel{}, err
	}
	now := s.nowUTC()
	c.CreatedAt, c.UpdatedAt, c.Version = now, now, 1
	if err := s.putNew(ctx, channelItem{key: channelKey(tenantID, c.ID), Entity: entityChannel, Channel: c, Sealed: sealed}); err != nil {
		return domain.Channel{}, fmt.Errorf("create channel %s: %w", c.ID, err)
	}
	return c, nil
}

// GetChannel reads a channel.
func (s *Store) GetChannel(ctx context.Context, tenantID, id string) (domain.Channel, error) {
	c, _, err := s.GetChannelSealed(ctx, tenantID, id)
	return c, err
}

// GetChannelSealed reads a channel with its sealed secret.
func (s *Store) GetChannelSealed(ctx context.Context, tenantID, id string) (domain.Channel, string, error) {
	var it channelItem
	if err := s.get(ctx, channelKey(tenantID, id), &it); err != nil {
		return domain.Channel{}, "", fmt.Errorf("get channel %s: %w", id, err)
	}
	return it.Channel, it.Sealed, nil
}

// ListChannels lists the tenant's channels in the order they were made.
func (s *Store) ListChannels(ctx context.Context, tenantID string, page Page) ([]domain.Channel, string, error) {
	out, next, err := list(ctx, s, listing{pk: tenantPK(tenantID), prefix: prefixChannel}, page, func(it channelItem) domain.Channel { return it.Channel })
	if err != nil {
		return nil, "", fmt.Errorf("list channels: %w", err)
	}
	return out, next, nil
}

// SealedChannel is a channel with its sealed secret, as the notifier reads them.
type SealedChannel struct {
	domain.Channel
	Sealed string
}

// AllChannels reads every channel of the tenant with its sealed secret: the notifier matches
// each event against all of them. A tenant has a handful.
func (s *Store) AllChannels(ctx context.Context, tenantID string) ([]SealedChannel, error) {
	var out []SealedChannel
	page := Page{Limit: maxPageLimit}
	for {
		items, next, err := list(ctx, s, listing{pk: tenantPK(tenantID), prefix: prefixChannel}, page, func(it channelItem) SealedChannel {
			return SealedChannel{Channel: it.Channel, Sealed: it.Sealed}
		})
		if err != nil {
			return nil, fmt.Errorf("list channels of %q: %w", tenantID, err)
		}
		out = append(out, items...)
		if next == "" {
			return out, nil
		}
		page.Cursor = next
	}
}

// UpdateChannel replaces a channel whose stored version is still c.Version and returns it as
// stored. A nil sealed keeps the stored secret.
func (s *Store) UpdateChannel(ctx context.Context, tenantID string, c domain.Channel, sealed *string) (domain.Channel, error) {
	c.TenantID = tenantID
	if err := c.Validate(events.TypeNames()); err != nil {
		return domain.Channel{}, err
	}
	k := channelKey(tenantID, c.ID)
	var stored channelItem
	if err := s.get(ctx, k, &stored); err != nil {
		return domain.Channel{}, fmt.Errorf("update channel %s: %w", c.ID, err)
	}
	if stored.Version != c.Version {
		return domain.Channel{}, fmt.Errorf("update channel %s: version %d is not the stored %d: %w", c.ID, c.Version, stored.Version, domain.ErrConflict)
	}
	secret := stored.Sealed
	if sealed != nil {
		secret = *sealed
	}
	read := c.Version
	c.Kind, c.CreatedAt = stored.Kind, stored.CreatedAt
	c.UpdatedAt, c.Version = s.nowUTC(), read+1
	m, err := marshal(channelItem{key: k, Entity: entityChannel, Channel: c, Sealed: secret})
	if err != nil {
		return domain.Channel{}, err
	}
	write := stamp(m)
	_, err = s.db.PutItem(ctx, &dynamodb.PutItemInput{
		TableName: &s.table, Item: m,
		ConditionExpression:       aws.String("attribute_exists(PK) AND #v = :read"),
		ExpressionAttributeNames:  map[string]string{"#v": "version"},
		ExpressionAttributeValues: map[string]types.AttributeValue{":read": num(read)},
	})
	if conditionFailed(err) {
		if s.landed(ctx, k.av(), write) {
			return c, nil
		}
		return domain.Channel{}, fmt.Errorf("update channel %s: %w", c.ID, s.missingOr(ctx, k, domain.ErrConflict))
	}
	if err != nil {
		return domain.Channel{}, fmt.Errorf("update channel %s: %w", c.ID, err)
	}
	return c, nil
}

// DeleteChannel removes a channel and what the notifier kept for it. The channel's partition
// goes first: while the channel item is there, deleting the tenant still finds the partition.
func (s *Store) DeleteChannel(ctx context.Context, tenantID, id string) error {
	if _, err := s.GetChannel(ctx, tenantID, id); err != nil {
		return err
	}
	if err := s.emptyPartitions(ctx, time.Now().Add(time.Minute), []string{channelPK(tenantID, id)}, Removed{}); err != nil {
		return fmt.Errorf("delete channel %s: %w", id, err)
	}
	if err := s.deleteExisting(ctx, channelKey(tenantID, id)); err != nil {
		return fmt.Errorf("delete channel %s: %w", id, err)
	}
	return nil
}

type deliveryItem struct {
	key
	Entity string `json:"entity"`
	domain.Delivery
	TTL int64 `json:"ttl"`
}

// PutDelivery records a delivery in its channel's log; the record expires after
// DeliveryRetention.
func (s *Store) PutDelivery(ctx context.Context, d domain.Delivery) error {
	if !domain.ValidID(d.ID) {
		return fmt.Errorf("put delivery: %q is not an ID", d.ID)
	}
	if len(d.EventIDs) > domain.MaxDeliveryEventIDs {
		d.EventIDs = d.EventIDs[:domain.MaxDeliveryEventIDs]
	}
	it := deliveryItem{key: deliveryKey(d.TenantID, d.ChannelID, d.ID), Entity: entityDelivery, Delivery: d, TTL: ttlAt(d.CreatedAt.Add(DeliveryRetention))}
	if err := s.putNew(ctx, it); err != nil {
		return fmt.Errorf("put delivery %s: %w", d.ID, err)
	}
	return nil
}

// ListDeliveries lists a channel's deliveries, newest first. A channel that does not exist is
// domain.ErrNotFound.
func (s *Store) ListDeliveries(ctx context.Context, tenantID, channelID string, page Page) ([]domain.Delivery, string, error) {
	// The listing goes first, so a cursor that is not this listing's is refused as such
	// whether or not the channel exists.
	out, next, err := list(ctx, s, listing{pk: channelPK(tenantID, channelID), prefix: prefixDelivery, reverse: true}, page, func(it deliveryItem) domain.Delivery { return it.Delivery })
	if err != nil {
		return nil, "", fmt.Errorf("list deliveries of channel %s: %w", channelID, err)
	}
	if _, err := s.GetChannel(ctx, tenantID, channelID); err != nil {
		return nil, "", err
	}
	return out, next, nil
}

// Claim states of a sent-event item.
const (
	claimSending = "sending"
	claimDone    = "done"
)

// ClaimEvent takes the right to send event eventID to a channel. It reports false when the
// event was sent already, or is being sent by another invocation whose lease (until leaseEnd)
// has not run out: EventBridge delivers an event at least once, and this is how a
// redelivered one is recognised. A claim whose holder died is taken over when its lease ends,
// so the event is sent late rather than never.
func (s *Store) ClaimEvent(ctx context.Context, tenantID, channelID, eventID string, leaseEnd time.Time) (bool, error) {
	now := s.nowUTC()
	item := map[string]types.AttributeValue{
		"PK": str(channelPK(tenantID, channelID)), "SK": str(prefixEvent + eventID),
		"entity": str(entitySentEvent), "state": str(claimSending), "leaseEnd": str(fmtTime(leaseEnd)),
		"ttl": num(ttlAt(now.Add(SentEventRetention))),
	}
	write := stamp(item)
	_, err := s.db.PutItem(ctx, &dynamodb.PutItemInput{
		TableName: &s.table, Item: item,
		ConditionExpression:       aws.String("attribute_not_exists(PK) OR (#s = :sending AND #l < :now)"),
		ExpressionAttributeNames:  map[string]string{"#s": "state", "#l": "leaseEnd"},
		ExpressionAttributeValues: map[string]types.AttributeValue{":sending": str(claimSending), ":now": str(fmtTime(now))},
	})
	if conditionFailed(err) {
		return s.landed(ctx, keyOf(item), write), nil
	}
	if err != nil {
		return false, fmt.Errorf("claim event %s for channel %s: %w", eventID, channelID, err)
	}
	return true, nil
}

// FinishEvent marks a claimed event as handled for good (sent, or given up on and logged).
func (s *Store) FinishEvent(ctx context.Context, tenantID, channelID, eventID string) error {
	_, err := s.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName: &s.table, Key: key{channelPK(tenantID, channelID), prefixEvent + eventID}.av(),
		UpdateExpression:          aws.String("SET #s = :done"),
		ExpressionAttributeNames:  map[string]string{"#s": "state"},
		ExpressionAttributeValues: map[string]types.AttributeValue{":done": str(claimDone)},
	})
	if err != nil {
		return fmt.Errorf("finish event %s for channel %s: %w", eventID, channelID, err)
	}
	return nil
}

// StartStreak records that subject (a policy×agent, or an agent) is failing as a channel sees
// it, and reports whether this began the streak: a quiet channel speaks only then.
func (s *Store) StartStreak(ctx context.Context, tenantID, channelID, subject, eventID string) (bool, error) {
	item := map[string]types.AttributeValue{
		"PK": str(channelPK(tenantID, channelID)), "SK": str(prefixStreak + subject),
		"entity": str(entityStreak), "eventId": str(eventID), "startedAt": str(fmtTime(s.nowUTC())),
	}
	_, err := s.db.PutItem(ctx, &dynamodb.PutItemInput{
		TableName: &s.table, Item: item, ConditionExpression: aws.String("attribute_not_exists(PK) OR eventId = :e"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":e": str(eventID)},
	})
	if conditionFailed(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("start streak %s for channel %s: %w", subject, channelID, err)
	}
	return true, nil
}

// EndStreak removes subject's failure streak and reports whether there was one: a quiet
// channel reports a recovery only after a failure it reported.
func (s *Store) EndStreak(ctx context.Context, tenantID, channelID, subject string) (bool, error) {
	out, err := s.db.DeleteItem(ctx, &dynamodb.DeleteItemInput{
		TableName: &s.table, Key: key{channelPK(tenantID, channelID), prefixStreak + subject}.av(),
		ReturnValues: types.ReturnValueAllOld,
	})
	if err != nil {
		return false, fmt.Errorf("end streak %s for channel %s: %w", subject, channelID, err)
	}
	return len(out.Attributes) > 0, nil
}

// ConfirmationRetention is how long an email confirmation link works.
const ConfirmationRetention = 7 * 24 * time.Hour

// PutEmailConfirmation records that the link with token hash tokenHash confirms address for a
// channel.
func (s *Store) PutEmailConfirmation(ctx context.Context, tenantID, channelID, tokenHash, address string) error {
	now := s.nowUTC()
	item := map[string]types.AttributeValue{
		"PK": str(channelPK(tenantID, channelID)), "SK": str(prefixConfirm + tokenHash),
		"entity": str(entityConfirm), "address": str(address), "expiresAt": str(fmtTime(now.Add(ConfirmationRetention))),
		"ttl": num(ttlAt(now.Add(ConfirmationRetention))),
	}
	if _, err := s.db.PutItem(ctx, &dynamodb.PutItemInput{TableName: &s.table, Item: item}); err != nil {
		return fmt.Errorf("put email confirmation for channel %s: %w", channelID, err)
	}
	return nil
}

// ConfirmEmail marks as confirmed the address the token hash tokenHash was made for and
// returns the address. An unknown or expired token, or one whose address the channel no
// longer lists, is domain.ErrNotFound.
func (s *Store) ConfirmEmail(ctx context.Context, tenantID, channelID, tokenHash string) (string, error) {
	k := key{channelPK(tenantID, channelID), prefixConfirm + tokenHash}
	var conf struct {
		Address   string    `json:"address"`
		ExpiresAt time.Time `json:"expiresAt"`
	}
	if err := s.get(ctx, k, &conf); err != nil {
		return "", fmt.Errorf("confirm email: %w", err)
	}
	now := s.nowUTC()
	if !now.Before(conf.ExpiresAt) {
		return "", fmt.Errorf("confirm email: the link expired: %w", domain.ErrNotFound)
	}
	for attempt := 0; ; attempt++ {
		c, err := s.GetChannel(ctx, tenantID, channelID)
		if err != nil {
			return "", err
		}
		found := false
		for i, e := range c.Emails {
			if strings.EqualFold(e.Address, conf.Address) {
				found = true
				c.Emails[i].Confirmed, c.Emails[i].ConfirmedAt = true, &now
			}
		}
		if !found {
			return "", fmt.Errorf("confirm email: the channel no longer sends to that address: %w", domain.ErrNotFound)
		}
		_, err = s.UpdateChannel(ctx, tenantID, c, nil)
		if errors.Is(err, domain.ErrConflict) && attempt < 5 {
			if err := sleepBackoff(ctx, attempt); err != nil {
				return "", err
			}
			continue
		}
		if err != nil {
			return "", err
		}
		break
	}
	if _, err := s.db.DeleteItem(ctx, &dynamodb.DeleteItemInput{TableName: &s.table, Key: k.av()}); err != nil {
		return "", fmt.Errorf("confirm email: %w", err)
	}
	return conf.Address, nil
}
