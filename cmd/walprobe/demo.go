package main

import (
	"context"
	"errors"
)

type demoCmd struct{}

func (demoCmd) Run(ctx context.Context, s streams) error { return errors.New("demo: not yet") }
