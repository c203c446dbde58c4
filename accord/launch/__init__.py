"""What wires both sides together on one machine: Flower's simulation of a training run (the
coordinator's server app with each node's client app) and the one-machine training job of the
demo and the benches. The coordinator and the node packages never import each other; this does."""
