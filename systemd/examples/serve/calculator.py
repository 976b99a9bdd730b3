"""The calculator of the worked example: goes to /opt/calculator/."""
import rpyc


class CalculatorService(rpyc.Service):
    ALIASES = ["calculator", "calc"]

    def exposed_add(self, a, b):
        return a + b

    def exposed_div(self, a, b):
        return a / b

    def exposed_apply(self, func, *args):
        """Calls the client back."""
        return func(*args)
