package fleet

import (
	"encoding/json"
	"errors"

	"github.com/gildhq/gild/agentproto"
	"github.com/gildhq/gild/guestconfig"
	"github.com/gildhq/gild/resource"
)

// BuiltinConfigurations are gild's machine configurations (package guestconfig).
type BuiltinConfigurations struct{}

var _ Configurations = BuiltinConfigurations{}

// Normalize implements Configurations.
func (BuiltinConfigurations) Normalize(props json.RawMessage) (json.RawMessage, error) {
	a, err := guestconfig.ParseAssignment(props)
	if err != nil {
		return nil, apiError(err)
	}
	if err := a.Normalize(); err != nil {
		return nil, apiError(err)
	}
	return json.Marshal(a)
}

// Agent implements Configurations.
func (BuiltinConfigurations) Agent(name string, props json.RawMessage) (agentproto.Assignment, error) {
	a, err := guestconfig.ParseAssignment(props)
	if err != nil {
		return agentproto.Assignment{}, apiError(err)
	}
	return a.Agent(name)
}

// apiError turns guestconfig's errors into the API's: one InvalidRequestContent error with
// a detail per problem, each naming its field.
func apiError(err error) error {
	var inv *guestconfig.InvalidError
	if errors.As(err, &inv) && len(inv.Problems) > 0 {
		top := resource.Errorf(resource.CodeInvalidRequestContent, inv.Problems[0].Path, "the machine configuration assignment is not valid: %s", inv.Error())
		for _, p := range inv.Problems {
			top.Details = append(top.Details, resource.Errorf(resource.CodeInvalidParameter, p.Path, "%s", p.Message))
		}
		return top
	}
	var nf *guestconfig.NotFoundError
	if errors.As(err, &nf) {
		return resource.Errorf(resource.CodeInvalidParameter, "properties.guestConfiguration.name", "%s", nf.Error())
	}
	return err
}
