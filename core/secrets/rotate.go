package secrets

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"strings"

	"github.com/relayhq/relay/core"
)

// RotateMaster re-wraps every workspace's data key, and every server key
// (such as the API key pepper), from oldMaster to newMaster and returns how
// many data keys it re-wrapped. Data keys, server keys and sealed secrets do
// not change, so no secret is re-encrypted and API keys keep verifying. It
// is all or nothing: a wrapped key that does not unwrap with oldMaster
// (wrong key, corrupt row) aborts the rotation and store.RewrapDataKeys
// keeps every wrapped key as it was.
//
// A store without a stored API key pepper (one no server of this version
// has opened yet) keeps none through the rotation: call APIKeyPepper with
// oldMaster first, once oldMaster is known to be the servers' key.
//
// A process still running on the old master key opens secrets only of
// workspaces whose data keys it has cached, and wraps any data key it
// creates with the old key, which the new one cannot unwrap: stop the
// servers, rotate, and start them again on the new key.
func RotateMaster(ctx context.Context, store core.DataKeyStore, oldMaster, newMaster []byte) (int, error) {
	if store == nil {
		return 0, errors.New("secrets: rotate master key: no data key store")
	}
	oldWrap, err := newWrapAEAD(oldMaster)
	if err != nil {
		return 0, fmt.Errorf("secrets: rotate master key: old %w", err)
	}
	newWrap, err := newWrapAEAD(newMaster)
	if err != nil {
		return 0, fmt.Errorf("secrets: rotate master key: new %w", err)
	}
	if subtle.ConstantTimeCompare(oldMaster, newMaster) == 1 {
		return 0, errors.New("secrets: rotate master key: the new master key is the old one")
	}
	n, err := store.RewrapDataKeys(ctx, func(id string, wrapped []byte) ([]byte, error) {
		if name, ok := strings.CutPrefix(id, core.ServerKeyScope); ok {
			key, err := unwrapServerKey(oldWrap, name, wrapped)
			if err != nil {
				return nil, fmt.Errorf("server key %q: %w", name, err)
			}
			defer clear(key)
			return wrapServerKey(newWrap, name, key), nil
		}
		dataKey, err := unwrapDataKey(oldWrap, id, wrapped)
		if err != nil {
			return nil, fmt.Errorf("data key of workspace %q: %w", id, err)
		}
		defer clear(dataKey)
		return wrapDataKey(newWrap, id, dataKey), nil
	})
	if err != nil {
		return 0, fmt.Errorf("secrets: rotate master key: nothing changed: %w", err)
	}
	return n, nil
}
