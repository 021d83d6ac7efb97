"""The dev stack: everything `shopfloor run` needs and no service image installs. The
embedded broker launcher, the supervisor that starts every installed service (found in the
`shopfloor.services` registry), the simulated shop (its scenario here, each service's
traffic and progress probe in that service's own `shopfloor.devstack` entry point) and the
`shopfloor` command."""
