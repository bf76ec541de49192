"""The gateway: `glm51 router` starts smg (the Shepherd Model Gateway) in front of replicas."""
