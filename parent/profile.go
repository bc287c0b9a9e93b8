package parent

import (
	"github.com/stomp-broker/stomp-broker/internal/profiling"
)

// The parent profiles itself for a while when STOMP_BROKER_PROFILE is set
// (package profiling): Serve calls profiling.StartFor("parent") as it
// starts; a child of the same binary profiles in child.Run.

// profileEnv returns the environment entries that make a child profile
// itself too, or nil when profiling is off.
func profileEnv() []string {
	if dir := profiling.Dir(); dir != "" {
		return []string{profiling.EnvDir + "=" + dir}
	}
	return nil
}
